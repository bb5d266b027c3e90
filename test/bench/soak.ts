/**
 * The soak run shared by the 10-minute script (`npm run bench:soak`) and its 1-minute version in
 * `npm test` (test/serving/soak.test.ts): a real gateway on loopback with a 100 % shadow, its
 * maximum throughput measured, then load at a fraction of it in windows of a fixed number of
 * requests (so every request sent is answered and can be counted), with RSS and p99 per window
 * and the gateway's own counts (Prometheus counters and the per-minute rollups in the database)
 * compared with what was sent.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';
import { addVariant, imagePixels, registerModel, setPolicy, tensorValues } from '../serving/support/serving-fixtures';

const LOAD_GENERATOR = path.join(__dirname, 'load-generator.js');
const MODEL = 'soak';

export interface SoakOptions {
  /** Seconds of the maximum-throughput probe. */
  probeSeconds: number;
  /** Seconds of load, in windows of `windowSeconds`. */
  loadSeconds: number;
  windowSeconds: number;
  /** Share of the measured maximum to send, 0..1. */
  loadFraction: number;
  /** Concurrent connections of the load (at most this many requests in flight). */
  connections: number;
  /** Called after each window, for progress. */
  onWindow?: (window: SoakWindow) => void;
}

export interface SoakWindow {
  index: number;
  requests: number;
  /** Requests answered with anything but 2xx, connection errors and timeouts. */
  failures: number;
  p50Ms: number;
  p99Ms: number;
  rssMiB: number;
}

export interface SoakReport {
  maxThroughput: number;
  rate: number;
  windows: SoakWindow[];
  sent: number;
  /** Deltas over the load windows of the gateway's own counts. */
  counted: { primary: number; shadow: number; shadowDropped: number; errors: number; rollupRequests: number; rollupShadowRequests: number };
}

interface AutocannonResult {
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}

function loadGenerator(url: string, bodyFile: string, settings: Record<string, unknown>): Promise<AutocannonResult> {
  const options = { url, method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, ...settings };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [LOAD_GENERATOR, JSON.stringify(options), bodyFile], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => {
      if (error) reject(error);
      else resolve(JSON.parse(stdout) as AutocannonResult);
    });
  });
}

/** Sum of a Prometheus metric's samples whose labels include all of `labels`. */
async function metricSum(gateway: TestGateway, name: string, labels: Record<string, string>): Promise<number> {
  const text = await gateway.services.serving.metrics.registry.metrics();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function counts(gateway: TestGateway, modelId: string, since: Date) {
  await gateway.services.serving.flushRollups();
  const rollups = await gateway.services.serving.rollups.query(modelId, since);
  return {
    primary: await metricSum(gateway, 'gateway_inference_requests_total', { model: MODEL, role: 'primary' }),
    shadow: await metricSum(gateway, 'gateway_inference_requests_total', { model: MODEL, role: 'shadow' }),
    shadowDropped: await metricSum(gateway, 'gateway_shadow_dropped_total', { model: MODEL }),
    errors: await metricSum(gateway, 'gateway_inference_errors_total', { model: MODEL }),
    rollupRequests: rollups.reduce((n, r) => n + r.requests, 0),
    rollupShadowRequests: rollups.reduce((n, r) => n + r.shadowRequests, 0),
  };
}

/** Waits until every mirrored request has run or was dropped, so the counts are final. */
async function shadowsSettled(gateway: TestGateway, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const primary = await metricSum(gateway, 'gateway_inference_requests_total', { model: MODEL, role: 'primary' });
    const shadow = await metricSum(gateway, 'gateway_inference_requests_total', { model: MODEL, role: 'shadow' });
    const dropped = await metricSum(gateway, 'gateway_shadow_dropped_total', { model: MODEL });
    if (shadow + dropped >= primary || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const gateway = await startTestGateway({ env: { SERVING_ROLLUP_FLUSH_MS: '3600000' } });
  const bodyFile = path.join(os.tmpdir(), `soak-body-${process.pid}.json`);
  try {
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await addVariant(gateway, MODEL, 'shadow', 'tiny-classifier-q.onnx');
    const policy = await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 100 }], shadows: [{ variant: 'shadow', mirrorPercent: 100 }] });
    if (policy.errors) throw new Error(policy.errors[0].message);
    const modelId = (await gateway.services.registry.getModel(MODEL)).id;
    fs.writeFileSync(bodyFile, JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1, 28, 28], data: tensorValues(imagePixels(7)) }] }));
    const url = `${gateway.url}/v2/models/${MODEL}/infer`;

    const probe = await loadGenerator(url, bodyFile, { connections: options.connections, duration: options.probeSeconds });
    const maxThroughput = probe.requests.total / probe.duration;
    const rate = Math.max(1, Math.floor(maxThroughput * options.loadFraction));
    await shadowsSettled(gateway, 30_000);

    const before = await counts(gateway, modelId, new Date(0));
    const windows: SoakWindow[] = [];
    const perWindow = Math.max(1, Math.round(rate * options.windowSeconds));
    for (let index = 0; index < Math.max(1, Math.round(options.loadSeconds / options.windowSeconds)); index++) {
      const result = await loadGenerator(url, bodyFile, { connections: options.connections, overallRate: rate, amount: perWindow, timeout: 30 });
      const window = {
        index,
        requests: result.requests.total,
        failures: result.non2xx + result.errors + result.timeouts,
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        rssMiB: process.memoryUsage().rss / 2 ** 20,
      };
      windows.push(window);
      options.onWindow?.(window);
    }
    await shadowsSettled(gateway, 60_000);
    const after = await counts(gateway, modelId, new Date(0));
    const delta = Object.fromEntries(Object.entries(after).map(([key, value]) => [key, value - before[key as keyof typeof before]])) as SoakReport['counted'];
    return { maxThroughput, rate, windows, sent: perWindow * windows.length, counted: delta };
  } finally {
    fs.rmSync(bodyFile, { force: true });
    await gateway.stop();
  }
}
