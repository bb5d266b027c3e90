import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { addVariant, get, imagePixels, png, post, registerModel, setPolicy } from '../serving/support/serving-fixtures';

const ROOT = path.resolve(__dirname, '..', '..');
const PROMTOOL = '/usr/bin/promtool';
const MODEL = 'shop';

/** Metric families of a scrape by name, with their type; histograms also answer to _bucket, _sum and _count. */
function families(scrape: string): Map<string, string> {
  const byName = new Map<string, string>();
  for (const [, name, type] of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    byName.set(name, type);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) byName.set(name + suffix, type);
  }
  return byName;
}

/** Every PromQL expression of a Grafana dashboard: panel targets and template variable queries. */
function dashboardQueries(file: string): string[] {
  const dashboard = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>;
    templating?: { list: Array<{ query?: { query?: string } | string }> };
  };
  const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const variables = (dashboard.templating?.list ?? []).map((v) => (typeof v.query === 'string' ? v.query : v.query?.query ?? ''));
  return [...targets, ...variables].filter((q) => q.length > 0);
}

describe('Prometheus and Grafana', () => {
  let gateway: TestGateway;
  let scrape: string;

  beforeAll(async () => {
    gateway = await startTestGateway();
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-classifier-q.onnx');
    await setPolicy(gateway, MODEL, { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'w4a4', mirrorPercent: 100 }] });
    for (let i = 0; i < 5; i++) {
      const reply = await post(gateway, `/v2/models/${MODEL}/classify`, png(imagePixels(i)), { 'content-type': 'image/png' });
      await post(gateway, `/v2/models/${MODEL}/feedback`, { id: reply.headers.get('x-request-id'), label: 1 });
    }
    await post(gateway, `/v2/models/${MODEL}/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1], data: [1] }] });
    scrape = (await get(gateway, '/metrics', null)).text;
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('a real scrape passes promtool check metrics', () => {
    expect(scrape).toContain(`gateway_traffic_share{model="${MODEL}",variant="fp32",role="primary"} 1`);
    expect(scrape).toContain(`gateway_traffic_share{model="${MODEL}",variant="w4a4",role="shadow"} 1`);
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: scrape, encoding: 'utf8' });
    expect({ status: check.status, output: `${check.stdout}${check.stderr}` }).toEqual({ status: 0, output: '' });
  });

  test('the README documents every gateway metric the scrape holds, with its labels', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const names = [...scrape.matchAll(/^# TYPE (gateway_\S+) /gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${name}\``));
      expect({ name, documented: row !== undefined }).toEqual({ name, documented: true });
      const labels = new Set<string>();
      for (const [, set] of scrape.matchAll(new RegExp(`^${name}(?:_bucket|_sum|_count)?\\{([^}]*)\\}`, 'gm'))) {
        for (const [, label] of set.matchAll(/(\w+)="/g)) if (label !== 'le') labels.add(label);
      }
      for (const label of labels) expect({ name, label, inRow: row!.includes(`\`${label}\``) }).toEqual({ name, label, inRow: true });
    }
  });

  test('every Grafana query names metrics the gateway exports', () => {
    const exported = families(scrape);
    const files = fs.readdirSync(path.join(ROOT, 'deploy', 'grafana')).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const queries = dashboardQueries(path.join(ROOT, 'deploy', 'grafana', file));
      expect(queries.length).toBeGreaterThan(5);
      for (const query of queries) {
        const metrics = [...query.matchAll(/\b(gateway_[a-z0-9_]+)/g)].map((m) => m[1]);
        expect({ query, names: metrics.length > 0 }).toEqual({ query, names: true });
        for (const metric of metrics) expect({ file, metric, exported: exported.has(metric) }).toEqual({ file, metric, exported: true });
      }
    }
  });

  test('the Prometheus scrape config points at the gateway\'s /metrics', () => {
    const config = yaml.load(fs.readFileSync(path.join(ROOT, 'deploy', 'prometheus', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const job = config.scrape_configs.find((c) => c.job_name === 'vit-gateway');
    expect(job?.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job?.static_configs[0].targets).toEqual(['localhost:8080']);
    const check = spawnSync(PROMTOOL, ['check', 'config', path.join(ROOT, 'deploy', 'prometheus', 'prometheus.yml')], { encoding: 'utf8' });
    expect({ status: check.status, output: check.stderr }).toMatchObject({ status: 0 });
  });
});
