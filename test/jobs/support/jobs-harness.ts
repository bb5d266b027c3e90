import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { createFimaqPlugin, type FimaqPluginOptions } from '../../../plugins/fimaq';
import { jobStreamNames } from '../../../workers/common/jobs/streams';
import type { TestGateway } from '../../support/gateway-harness';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const REGISTER_TS = path.join(REPO_ROOT, 'test', 'support', 'register-ts.js');
export const WORKER_SOURCE = path.join(REPO_ROOT, 'workers', 'main.ts');
export const COPY_ENGINE = path.join(__dirname, 'copy-engine.ts');
export const TINY_CLASSIFIER = path.join(REPO_ROOT, 'test', 'fixtures', 'engine', 'tiny-vit-cls-op17.onnx');
export const FASHION_MNIST = path.join(REPO_ROOT, 'deploy', 'demo', 'data', 'fashion-mnist');

/** The worker from source, so tests exercise the code under test rather than dist/. */
export const SOURCE_WORKER_COMMAND = { entry: WORKER_SOURCE, execArgv: ['-r', REGISTER_TS] };

/** The fimaq plugin with an embedded worker running from source. */
export function fimaqPlugin(options: FimaqPluginOptions = {}) {
  return createFimaqPlugin({ embeddedWorker: SOURCE_WORKER_COMMAND, ...options });
}

/** A uint8 NPY image array of the given shape ([N, H, W] or [N, H, W, C]) with varied pixels. */
export function npyImages(shape: number[]): Buffer {
  const header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`.padEnd(117, ' ') + '\n';
  const prefix = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length, 0]);
  const pixels = Buffer.alloc(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37) % 256;
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), pixels]);
}

export function uniqueNamespace(): string {
  return `t${randomBytes(5).toString('hex')}`;
}

/** Deletes a test namespace's streams and buckets from the shared NATS server. */
export async function deleteNamespace(natsUrl: string, namespace: string): Promise<void> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const names = jobStreamNames(namespace);
    for (const stream of [names.jobsStream, names.eventsStream, `KV_${names.cancellationsBucket}`, `OBJ_${names.artifactsBucket}`]) {
      await jsm.streams.delete(stream).catch(() => undefined);
    }
  } finally {
    await nc.close();
  }
}

/** Messages waiting in a namespace's job stream (work queue: published, not yet acknowledged). */
export async function queuedJobMessages(natsUrl: string, namespace: string): Promise<number> {
  const nc = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(jobStreamNames(namespace).jobsStream)).state.messages;
  } finally {
    await nc.close();
  }
}

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A standalone worker process (`npm run worker`) from source, with the copy engine unless told otherwise. */
export function startWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['-r', REGISTER_TS, WORKER_SOURCE], {
    env: { ...process.env, LOG_LEVEL: 'info', WORKER_ENGINE_MODULE: COPY_ENGINE, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    stop: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export const JOB_FIELDS = `id status stage block blocks iteration iterations progress etaSeconds attempt reason variantId log worker { workerId backend device }
  variant { id tag precision method parentVariantId status config metrics artifactSha256 }`;

export interface JobView {
  id: string;
  status: string;
  stage: string | null;
  block: number | null;
  blocks: number | null;
  iteration: number | null;
  iterations: number | null;
  progress: number;
  etaSeconds: number | null;
  attempt: number;
  reason: string | null;
  variantId: string | null;
  log: string[];
  worker: { workerId: string; backend: string; device: string } | null;
  variant: { id: string; tag: string; precision: string; method: string; parentVariantId: string; status: string; config: Record<string, unknown>; metrics: Record<string, unknown>; artifactSha256: string } | null;
}

export const TINY_ENCODER = path.join(REPO_ROOT, 'test', 'fixtures', 'engine', 'tiny-vit-emb-op17.onnx');

export async function registerTinyClassifier(gateway: TestGateway, name = 'tiny'): Promise<{ modelId: string; variantId: string }> {
  return registerTinyModel(gateway, name, 'CLASSIFICATION', TINY_CLASSIFIER);
}

export async function registerTinyModel(gateway: TestGateway, name: string, task: 'CLASSIFICATION' | 'RETRIEVAL', file: string): Promise<{ modelId: string; variantId: string }> {
  const result = await gateway.graphql<{ registerModel: { model: { id: string }; variant: { id: string } } }>(
    `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } variant { id } } }`,
    { input: { name, task, localPath: file, preprocessing: { height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353] } } },
  );
  if (!result.data) throw new Error(`registerModel failed: ${JSON.stringify(result.errors)}`);
  return { modelId: result.data.registerModel.model.id, variantId: result.data.registerModel.variant.id };
}

export async function quantize(gateway: TestGateway, input: Record<string, unknown>) {
  return gateway.graphql<{ quantizeModel: JobView }>(
    `mutation($input: QuantizeModelInput!) { quantizeModel(input: $input) { ${JOB_FIELDS} } }`,
    { input: { model: 'tiny', method: 'RTN', calibration: { path: FASHION_MNIST }, calibSize: 8, ...input } },
  );
}

export async function jobOf(gateway: TestGateway, id: string): Promise<JobView> {
  const result = await gateway.graphql<{ quantizationJob: JobView }>(`query($id: ID!) { quantizationJob(id: $id) { ${JOB_FIELDS} } }`, { id });
  if (!result.data?.quantizationJob) throw new Error(`no job ${id}: ${JSON.stringify(result.errors)}`);
  return result.data.quantizationJob;
}

export function waitForStatus(gateway: TestGateway, id: string, statuses: string[], timeoutMs = 60_000): Promise<JobView> {
  return waitFor(`job ${id} to be ${statuses.join(' or ')}`, async () => {
    const job = await jobOf(gateway, id);
    return statuses.includes(job.status) ? job : undefined;
  }, timeoutMs);
}
