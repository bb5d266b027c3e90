import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { createTestDatabase, describeWithNats, describeWithPostgres, NATS_TEST_URL } from '../support/services';
import {
  deleteNamespace,
  fimaqPlugin,
  jobOf,
  quantize,
  queuedJobMessages,
  registerTinyClassifier,
  startWorker,
  uniqueNamespace,
  waitFor,
  waitForStatus,
  type WorkerProcess,
} from './support/jobs-harness';
import { PrivateNatsServer } from './support/private-nats';

/** Short redelivery so a lost worker's job moves on quickly. */
const FAST_REDELIVERY = { JOB_ACK_WAIT_MS: '2000', WORKER_HEARTBEAT_MS: '300' };

interface Setup {
  namespace: string;
  natsUrl: string;
  gateway: TestGateway;
  workers: WorkerProcess[];
  tmp: string;
}

async function setUp(natsUrl = NATS_TEST_URL, env: Record<string, string> = {}): Promise<Setup> {
  const namespace = uniqueNamespace();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-nats-'));
  const gateway = await startTestGateway({ plugins: [fimaqPlugin({ config: { natsNamespace: namespace, dispatchIntervalMs: 200 } })], env: { NATS_URL: natsUrl, ...env } });
  await registerTinyClassifier(gateway);
  return { namespace, natsUrl, gateway, workers: [], tmp };
}

function addWorker(setup: Setup, id: string, env: Record<string, string> = {}): WorkerProcess {
  const worker = startWorker({
    NATS_URL: setup.natsUrl,
    FIMAQ_NATS_NAMESPACE: setup.namespace,
    WORKER_ID: id,
    DATA_DIR: path.join(setup.tmp, id),
    ...FAST_REDELIVERY,
    ...env,
  });
  setup.workers.push(worker);
  return worker;
}

async function tearDown(setup: Setup | undefined): Promise<void> {
  if (!setup) return;
  await Promise.all(setup.workers.map((w) => w.stop('SIGKILL')));
  await setup.gateway.stop();
  await deleteNamespace(setup.natsUrl, setup.namespace).catch(() => undefined);
  fs.rmSync(setup.tmp, { recursive: true, force: true });
}

/** Variants of the test model made by one job (a job yields at most one). */
async function variantsOfJob(gateway: TestGateway, jobId: string): Promise<string[]> {
  const result = await gateway.graphql<{ model: { variants: Array<{ id: string; config: { jobId?: string } }> } }>(`{ model(name: "tiny") { variants { id config } } }`);
  return result.data!.model.variants.filter((v) => v.config.jobId === jobId).map((v) => v.id);
}

describeWithNats('quantization jobs over NATS JetStream', () => {
  let setup: Setup | undefined;

  afterEach(async () => {
    await tearDown(setup);
    setup = undefined;
  });

  test('a worker killed mid-job: the job is redelivered, another worker completes it, one variant exists', async () => {
    setup = await setUp();
    const doomed = addWorker(setup, 'doomed', { COPY_ENGINE_STEPS: '40', COPY_ENGINE_STEP_MS: '100' });
    const id = (await quantize(setup.gateway, {})).data!.quantizeModel.id;
    await waitFor('the first worker to report progress', async () => {
      const job = await jobOf(setup!.gateway, id);
      return job.worker?.workerId === 'doomed' && job.progress > 0 ? job : undefined;
    });
    await doomed.stop('SIGKILL');

    addWorker(setup, 'rescuer', { COPY_ENGINE_STEPS: '5', COPY_ENGINE_STEP_MS: '20' });
    const job = await waitForStatus(setup.gateway, id, ['succeeded', 'failed']);
    expect(job).toMatchObject({ status: 'succeeded', attempt: 2, worker: { workerId: 'rescuer' } });
    expect(await variantsOfJob(setup.gateway, id)).toEqual([job.variantId]);
  });

  test('SIGTERM: a worker stops pulling, hands its running job back after the grace period and exits cleanly', async () => {
    setup = await setUp();
    const leaving = addWorker(setup, 'leaving', { COPY_ENGINE_STEPS: '600', COPY_ENGINE_STEP_MS: '100', WORKER_SHUTDOWN_GRACE_MS: '300' });
    const id = (await quantize(setup.gateway, {})).data!.quantizeModel.id;
    await waitForStatus(setup.gateway, id, ['running']);
    expect(await leaving.stop('SIGTERM')).toBe(0);
    expect(leaving.output()).toMatch(/job handed back: worker shutting down/);

    addWorker(setup, 'staying', { COPY_ENGINE_STEPS: '3', COPY_ENGINE_STEP_MS: '10' });
    const job = await waitForStatus(setup.gateway, id, ['succeeded', 'failed']);
    expect(job).toMatchObject({ status: 'succeeded', attempt: 2, worker: { workerId: 'staying' } });
  });

  test('a job that keeps losing its worker fails with the reason after JOB_MAX_ATTEMPTS deliveries', async () => {
    setup = await setUp();
    const id = (await quantize(setup.gateway, {})).data!.quantizeModel.id;
    for (const attempt of [1, 2]) {
      const worker = addWorker(setup, `crashing-${attempt}`, { COPY_ENGINE_STEPS: '100', COPY_ENGINE_STEP_MS: '100', JOB_MAX_ATTEMPTS: '2' });
      await waitFor(`attempt ${attempt} to run`, async () => ((await jobOf(setup!.gateway, id)).attempt === attempt ? true : undefined));
      await worker.stop('SIGKILL');
    }
    addWorker(setup, 'last', { JOB_MAX_ATTEMPTS: '2' });
    const job = await waitForStatus(setup.gateway, id, ['succeeded', 'failed']);
    expect(job.status).toBe('failed');
    expect(job.reason).toMatch(/gave up after 2 deliveries/);
    expect(await variantsOfJob(setup.gateway, id)).toEqual([]);
  });

  test('the same mutation twice with one idempotency key makes one job and one message; another request with the key is refused', async () => {
    setup = await setUp();
    const first = await quantize(setup.gateway, { idempotencyKey: 'nightly-42' });
    const second = await quantize(setup.gateway, { idempotencyKey: 'nightly-42' });
    expect(second.data!.quantizeModel.id).toBe(first.data!.quantizeModel.id);
    const different = await quantize(setup.gateway, { idempotencyKey: 'nightly-42', bits: 'W8A8' });
    expect(different.errors?.[0].extensions?.code).toBe('CONFLICT');

    const jobs = await setup.gateway.graphql<{ quantizationJobs: unknown[] }>(`{ quantizationJobs(model: "tiny") { id } }`);
    expect(jobs.data!.quantizationJobs).toHaveLength(1);
    await waitFor('the job to be published', async () => ((await queuedJobMessages(setup!.natsUrl, setup!.namespace)) === 1 ? true : undefined));
  });

  test('cancelling a queued and a running job: the worker drops both and no variant appears', async () => {
    setup = await setUp();
    addWorker(setup, 'busy', { COPY_ENGINE_STEPS: '600', COPY_ENGINE_STEP_MS: '100' });
    const running = (await quantize(setup.gateway, {})).data!.quantizeModel.id;
    const queued = (await quantize(setup.gateway, { bits: 'W8A8' })).data!.quantizeModel.id;
    await waitForStatus(setup.gateway, running, ['running']);
    for (const id of [queued, running]) {
      const result = await setup.gateway.graphql(`mutation($id: ID!) { cancelQuantizationJob(id: $id) { status } }`, { id });
      expect(result.data).toEqual({ cancelQuantizationJob: { status: 'cancelled' } });
    }
    // Both messages leave the work queue only when the worker acknowledges them: the running job
    // must stop well before its 60 s of steps, and the queued one must never start.
    await waitFor('the work queue to drain', async () => ((await queuedJobMessages(setup!.natsUrl, setup!.namespace)) === 0 ? true : undefined), 20_000);
    for (const id of [queued, running]) {
      expect(await jobOf(setup.gateway, id)).toMatchObject({ status: 'cancelled', variantId: null });
    }
  });

  test('NATS restarted while jobs are queued and running: nothing is lost, all complete', async () => {
    const nats = await PrivateNatsServer.start();
    try {
      setup = await setUp(nats.url);
      addWorker(setup, 'steady', { COPY_ENGINE_STEPS: '15', COPY_ENGINE_STEP_MS: '100' });
      const ids: string[] = [];
      for (const bits of ['W4A4', 'W8A8', 'W3A3']) ids.push((await quantize(setup.gateway, { bits })).data!.quantizeModel.id);
      await waitForStatus(setup.gateway, ids[0], ['running']);

      await nats.stop();
      // A job queued while the server is down waits in the outbox.
      ids.push((await quantize(setup.gateway, { bits: 'W6A6' })).data!.quantizeModel.id);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await nats.restart();

      for (const id of ids) {
        const job = await waitForStatus(setup.gateway, id, ['succeeded', 'failed'], 90_000);
        expect(job.status).toBe('succeeded');
        expect(await variantsOfJob(setup.gateway, id)).toEqual([job.variantId]);
      }
    } finally {
      await tearDown(setup);
      setup = undefined;
      await nats.dispose();
    }
  });
});

describeWithPostgres('quantization jobs over NATS JetStream with PostgreSQL', () => {
  describeWithNats('gateway restarts', () => {
    test('the gateway restarted while a job runs: the result is still recorded', async () => {
      const database = await createTestDatabase();
      const namespace = uniqueNamespace();
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-restart-'));
      const env = { NATS_URL: NATS_TEST_URL, DATABASE_URL: database.url, DATA_DIR: path.join(tmp, 'gateway') };
      const plugin = () => fimaqPlugin({ config: { natsNamespace: namespace, dispatchIntervalMs: 200 } });
      const worker = startWorker({ NATS_URL: NATS_TEST_URL, FIMAQ_NATS_NAMESPACE: namespace, WORKER_ID: 'w', DATA_DIR: path.join(tmp, 'w'), COPY_ENGINE_STEPS: '20', COPY_ENGINE_STEP_MS: '100', ...FAST_REDELIVERY });
      let gateway: TestGateway | undefined;
      try {
        gateway = await startTestGateway({ plugins: [plugin()], env });
        await registerTinyClassifier(gateway);
        const id = (await quantize(gateway, {})).data!.quantizeModel.id;
        await waitForStatus(gateway, id, ['running']);
        await gateway.stop();
        gateway = undefined;
        // The job finishes while no gateway listens; its result waits in the events stream.
        await new Promise((resolve) => setTimeout(resolve, 3000));

        gateway = await startTestGateway({ plugins: [plugin()], env });
        const job = await waitForStatus(gateway, id, ['succeeded', 'failed']);
        expect(job.status).toBe('succeeded');
        expect(job.variant).toMatchObject({ tag: 'w4a4-rtn', status: 'ready' });
      } finally {
        await worker.stop('SIGKILL');
        await gateway?.stop();
        await database.drop();
        await deleteNamespace(NATS_TEST_URL, namespace).catch(() => undefined);
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  });
});
