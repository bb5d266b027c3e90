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
    { query: 'subscription($id: ID!) { quantizationJobUpdated(id: $id) { id status stage block blocks iteration iterations progress etaSeconds attempt log worker { workerId backend device } } }', variables: { id } },
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
    const evaluation = { data: `${FASHION_MNIST} (test split)`, images: 1000, imagesSha256: expect.any(String) };
    expect(job.variant!.metrics).toMatchObject({ task: 'classification', images: 1000, top1: expect.any(Number), evaluation });
    // Served in the form timed fastest among those whose outputs match, and the config says why.
    expect(job.variant!.config.exportForm).toMatchObject({
      form: expect.stringMatching(/^(ort|qdq)$/), reason: expect.stringMatching(/fastest form whose outputs match/), batch: 8,
      msPerBatch: { ort: expect.any(Number), qdq: expect.any(Number), fp32: expect.any(Number) },
    });
    // The parent had no figures on this set: the job measured it too, so both sit side by side.
    const parent = await gateway.graphql<{ variant: { metrics: Record<string, unknown> } }>('query($id: ID!) { variant(id: $id) { metrics } }', { id: parentId });
    expect(parent.data!.variant.metrics).toMatchObject({ task: 'classification', images: 1000, top1: expect.any(Number), evaluation });
    // The last stage and log lines say the job finished.
    expect(job.stage).toBe('finished');
    expect(job.log.at(-1)).toMatch(/^job finished: variant w4a4-rtn \(/);
    expect(job.log.some((line) => /^finished: quantized model stored/.test(line))).toBe(true);

    const policy = await gateway.graphql<{ trafficPolicy: { shadows: Array<{ variantId: string; mirrorPercent: number }> } }>(
      `{ trafficPolicy(model: "tiny") { shadows { variantId mirrorPercent } } }`,
    );
    expect(policy.data!.trafficPolicy.shadows).toEqual([{ variantId: job.variantId, mirrorPercent: 100 }]);

    await waitFor('the subscription to see the end', async () => (subscription.updates.at(-1)?.status === 'succeeded' ? true : undefined), 10_000);
    expect(subscription.updates.some((u) => u.status === 'running')).toBe(true);
    const figures = subscription.updates.map((u) => u.progress);
    expect(figures).toEqual([...figures].sort((a, b) => a - b));
    expect(figures.every((p) => Math.round(p * 10) === p * 10)).toBe(true);
    expect(subscription.updates.every((u) => u.etaSeconds === null || Number.isInteger(u.etaSeconds))).toBe(true);
    await subscription.close();

    // A second job on the same set finds the parent's figures and leaves them alone.
    const again = await quantize(gateway, { bits: 'W4A8', evaluation: { path: FASHION_MNIST, split: 'test' } });
    const second = await waitForStatus(gateway, again.data!.quantizeModel.id, ['succeeded', 'failed'], 120_000);
    expect(second.status).toBe('succeeded');
    const audit = await gateway.graphql<{ auditLog: { action: string }[] }>('{ auditLog(limit: 100) { action } }');
    expect(audit.data!.auditLog.filter((e) => e.action === 'variant.metrics')).toHaveLength(1);
  });

  test('a FIMA-Q job with tiny sizes reports its reconstruction and yields a w3a3-fimaq variant', async () => {
    gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
    const { variantId: parentId } = await registerTinyClassifier(gateway);
    const queued = await quantize(gateway, { method: 'FIMAQ', bits: 'W3A3', calibSize: 8, reconSize: 8, iters: 10, rank: 1, seed: 3 });
    expect(queued.errors).toBeUndefined();
    const subscription = subscribeToJob(gateway, queued.data!.quantizeModel.id);
    const job = await waitForStatus(gateway, queued.data!.quantizeModel.id, ['succeeded', 'failed'], 300_000);
    expect(job.reason).toBeNull();
    await waitFor('the subscription to see the end', async () => (subscription.updates.at(-1)?.status === 'succeeded' ? true : undefined), 10_000);
    await subscription.close();
    // block/blocks count model blocks in every stage; iterations have their own fields.
    const reconstructing = subscription.updates.filter((u) => u.stage === 'reconstruct');
    expect(reconstructing.length).toBeGreaterThan(0);
    expect(reconstructing.every((u) => u.blocks === 4 && u.block! >= 1 && u.block! <= 4)).toBe(true);
    expect(reconstructing.some((u) => u.iterations === 10 && u.iteration! >= 1)).toBe(true);
    expect(subscription.updates.filter((u) => u.stage === 'calibrate').every((u) => u.blocks === 4)).toBe(true);
    // The log tells the task loss from the rounding regularizer, and what became of each block.
    const log = subscription.updates.flatMap((u) => u.log);
    expect(log.some((line) => /iteration 10\/10: task loss [\d.e+-]+ \+ rounding regularizer/.test(line))).toBe(true);
    expect(log.some((line) => /done: (output MSE|reconstruction raised output MSE)/.test(line))).toBe(true);
    expect(job.variant).toMatchObject({ tag: 'w3a3-fimaq', precision: 'W3A3', method: 'fimaq', parentVariantId: parentId, status: 'ready' });
    expect(job.variant!.config).toMatchObject({ iters: 10, rank: 1, reconSize: 8, seed: 3, methodReport: expect.any(Object) });
  });

  test('a retrieval encoder is quantized with FIMA-Q against its own reconstruction embeddings', async () => {
    gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
    await registerTinyModel(gateway, 'encoder', 'RETRIEVAL', TINY_ENCODER);
    const queued = await quantize(gateway, { model: 'encoder', method: 'FIMAQ', bits: 'W4A4', calibSize: 8, reconSize: 8, iters: 2, rank: 1 });
    expect(queued.errors).toBeUndefined();
    const job = await waitForStatus(gateway, queued.data!.quantizeModel.id, ['succeeded', 'failed'], 300_000);
    expect(job.reason).toBeNull();
    expect(job.variant).toMatchObject({ tag: 'w4a4-fimaq', status: 'ready' });
    expect(job.variant!.config).toMatchObject({ reference: 'gallery' });

    // The reference comes in the input, as the CLI's --reference does: class prototypes need labels.
    const prototypes = await quantize(gateway, { model: 'encoder', method: 'FIMAQ', bits: 'W4A4', calibSize: 8, reconSize: 8, iters: 2, rank: 1, reference: 'PROTOTYPES' });
    expect(prototypes.errors).toBeUndefined();
    const second = await waitForStatus(gateway, prototypes.data!.quantizeModel.id, ['succeeded', 'failed'], 300_000);
    expect(second.reason).toBeNull();
    expect(second.variant!.config).toMatchObject({ reference: 'prototypes', methodReport: { options: { reference: 'prototypes' } } });
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
