import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';
import { COPY_ENGINE, FASHION_MNIST, fimaqPlugin, registerTinyModel, TINY_ENCODER, jobOf, quantize, registerTinyClassifier, waitFor, waitForStatus, type JobView } from './support/jobs-harness';

/** Collects a job's updates from the subscription over graphql-ws. */
function subscribeToJob(gateway: TestGateway, id: string): { updates: JobView[]; close: () => Promise<void> } {
  const client = createClient({ url: `${gateway.url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const updates: JobView[] = [];
  const unsubscribe = client.subscribe<{ quantizationJobUpdated: JobView }>(
    { query: 'subscription($id: ID!) { quantizationJobUpdated(id: $id) { id status stage progress attempt log worker { workerId backend device } } }', variables: { id } },
    { next: (message) => message.data && updates.push(message.data.quantizationJobUpdated), error: () => undefined, complete: () => undefined },
  );
  return { updates, close: async () => { unsubscribe(); await client.dispose(); } };
}

describe('quantizeModel with the embedded transport (child-process worker, SQLite)', () => {
  let gateway: TestGateway;

  afterEach(async () => {
    await gateway?.stop();
  });

  test('an RTN job runs in the worker process and yields a ready W4A4 variant in shadow of its parent', async () => {
    gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
    const { variantId: parentId } = await registerTinyClassifier(gateway);

    const queued = await quantize(gateway, { bits: 'W4A4', evaluation: { path: FASHION_MNIST, split: 'test' } });
    expect(queued.errors).toBeUndefined();
    const id = queued.data!.quantizeModel.id;
    expect(queued.data!.quantizeModel.status).toBe('queued');
    const subscription = subscribeToJob(gateway, id);

    const job = await waitForStatus(gateway, id, ['succeeded', 'failed'], 120_000);
    expect(job.reason).toBeNull();
    expect(job.status).toBe('succeeded');
    expect(job.progress).toBe(100);
    expect(job.worker).toMatchObject({ workerId: 'embedded', backend: expect.stringMatching(/^(tensorflow-gpu|tensorflow|wasm|cpu)$/), device: expect.any(String) });
    expect(job.variant).toMatchObject({ tag: 'w4a4-rtn', precision: 'W4A4', method: 'rtn', parentVariantId: parentId, status: 'ready' });
    expect(job.variant!.config).toMatchObject({ jobId: id, bits: 'w4a4', calibSize: 8 });
    expect(job.variant!.metrics).toMatchObject({ task: 'classification', images: 1000, top1: expect.any(Number) });

    const policy = await gateway.graphql<{ trafficPolicy: { shadows: Array<{ variantId: string; mirrorPercent: number }> } }>(
      `{ trafficPolicy(model: "tiny") { shadows { variantId mirrorPercent } } }`,
    );
    expect(policy.data!.trafficPolicy.shadows).toEqual([{ variantId: job.variantId, mirrorPercent: 100 }]);

    await waitFor('the subscription to see the end', async () => (subscription.updates.at(-1)?.status === 'succeeded' ? true : undefined), 10_000);
    expect(subscription.updates.some((u) => u.status === 'running')).toBe(true);
    await subscription.close();
  });

  test('a FIMA-Q job with tiny sizes reports its reconstruction and yields a w3a3-fimaq variant', async () => {
    gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
    const { variantId: parentId } = await registerTinyClassifier(gateway);
    const queued = await quantize(gateway, { method: 'FIMAQ', bits: 'W3A3', calibSize: 8, reconSize: 8, iters: 2, rank: 1, seed: 3 });
    expect(queued.errors).toBeUndefined();
    const job = await waitForStatus(gateway, queued.data!.quantizeModel.id, ['succeeded', 'failed'], 300_000);
    expect(job.reason).toBeNull();
    expect(job.variant).toMatchObject({ tag: 'w3a3-fimaq', precision: 'W3A3', method: 'fimaq', parentVariantId: parentId, status: 'ready' });
    expect(job.variant!.config).toMatchObject({ iters: 2, rank: 1, reconSize: 8, seed: 3, methodReport: expect.any(Object) });
  });

  test('a retrieval encoder is quantized with FIMA-Q against its own reconstruction embeddings', async () => {
    gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
    await registerTinyModel(gateway, 'encoder', 'RETRIEVAL', TINY_ENCODER);
    const queued = await quantize(gateway, { model: 'encoder', method: 'FIMAQ', bits: 'W4A4', calibSize: 8, reconSize: 8, iters: 2, rank: 1 });
    expect(queued.errors).toBeUndefined();
    const job = await waitForStatus(gateway, queued.data!.quantizeModel.id, ['succeeded', 'failed'], 300_000);
    expect(job.reason).toBeNull();
    expect(job.variant).toMatchObject({ tag: 'w4a4-fimaq', status: 'ready' });
  });

  test('a queued and a running job can be cancelled; neither yields a variant', async () => {
    process.env.WORKER_ENGINE_MODULE = COPY_ENGINE;
    process.env.COPY_ENGINE_STEPS = '200';
    process.env.COPY_ENGINE_STEP_MS = '50';
    try {
      gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
      await registerTinyClassifier(gateway);
      const running = (await quantize(gateway, { bits: 'W4A4' })).data!.quantizeModel;
      const queued = (await quantize(gateway, { bits: 'W8A8' })).data!.quantizeModel;
      await waitForStatus(gateway, running.id, ['running']);

      const cancelQueued = await gateway.graphql<{ cancelQuantizationJob: JobView }>(
        `mutation($id: ID!) { cancelQuantizationJob(id: $id) { status reason } }`, { id: queued.id });
      expect(cancelQueued.data!.cancelQuantizationJob).toMatchObject({ status: 'cancelled', reason: expect.stringMatching(/^cancelled by admin/) });
      const cancelRunning = await gateway.graphql<{ cancelQuantizationJob: JobView }>(
        `mutation($id: ID!) { cancelQuantizationJob(id: $id) { status } }`, { id: running.id });
      expect(cancelRunning.data!.cancelQuantizationJob.status).toBe('cancelled');

      const again = await gateway.graphql(`mutation($id: ID!) { cancelQuantizationJob(id: $id) { status } }`, { id: running.id });
      expect(again.errors?.[0].extensions?.code).toBe('CONFLICT');
      // The worker stops and reports; the job stays cancelled and no variant appears.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await jobOf(gateway, running.id)).toMatchObject({ status: 'cancelled', variantId: null });
      expect(await jobOf(gateway, queued.id)).toMatchObject({ status: 'cancelled', variantId: null });
    } finally {
      delete process.env.WORKER_ENGINE_MODULE;
      delete process.env.COPY_ENGINE_STEPS;
      delete process.env.COPY_ENGINE_STEP_MS;
    }
  });

  test('the gateway restarted while a job runs: the job runs again and its result is recorded', async () => {
    process.env.WORKER_ENGINE_MODULE = COPY_ENGINE;
    process.env.COPY_ENGINE_STEPS = '20';
    process.env.COPY_ENGINE_STEP_MS = '100';
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-embedded-restart-'));
    try {
      const first = await startTestGateway({ plugins: [fimaqPlugin()], env: { DATA_DIR: dataDir } });
      await registerTinyClassifier(first);
      const id = (await quantize(first, {})).data!.quantizeModel.id;
      await waitForStatus(first, id, ['running']);
      await first.stop();

      gateway = await startTestGateway({ plugins: [fimaqPlugin()], env: { DATA_DIR: dataDir } });
      const job = await waitForStatus(gateway, id, ['succeeded', 'failed']);
      expect(job).toMatchObject({ status: 'succeeded', variant: { tag: 'w4a4-rtn', status: 'ready' } });
    } finally {
      delete process.env.WORKER_ENGINE_MODULE;
      delete process.env.COPY_ENGINE_STEPS;
      delete process.env.COPY_ENGINE_STEP_MS;
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
