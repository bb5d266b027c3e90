import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobRecord } from '../../plugins/fimaq/job-record';
import { JOB_UPDATED_TOPIC } from '../../plugins/fimaq/job-topics';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { describeWithNats, describeWithPostgres, NATS_TEST_URL } from '../support/services';
import { deleteNamespace, fimaqPlugin, quantize, registerTinyClassifier, startWorker, uniqueNamespace, waitFor, type WorkerProcess } from '../jobs/support/jobs-harness';
import { addVariant, imagePixels, png, post, registerModel, setPolicy } from '../serving/support/serving-fixtures';

/** How soon every replica must agree on a change made on one of them. */
const AGREEMENT_MS = 1000;

/** Milliseconds until `probe` holds on the replica, polling every 20 ms; fails past the agreement bound. */
async function msUntil(what: string, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await probe())) {
    if (Date.now() - started > AGREEMENT_MS * 3) throw new Error(`the other replica did not see ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return Date.now() - started;
}

/**
 * Two gateway processes' worth of replicas (two gateways in this process) over one PostgreSQL
 * database, one artifact directory (shared storage) and one NATS server.
 */
describeWithPostgres('gateway replicas sharing one PostgreSQL', () => {
  describeWithNats('and one NATS', () => {
    const namespace = uniqueNamespace();
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'replicas-'));
    const plugin = () => fimaqPlugin({ config: { natsNamespace: namespace, dispatchIntervalMs: 200 } });
    let a: TestGateway;
    let b: TestGateway;
    let worker: WorkerProcess | undefined;

    beforeAll(async () => {
      a = await startTestGateway({ dialect: 'postgres', plugins: [plugin()], env: { NATS_URL: NATS_TEST_URL } });
      b = await startTestGateway({ plugins: [plugin()], env: { NATS_URL: NATS_TEST_URL, DATABASE_URL: a.services.config.databaseUrl!, DATA_DIR: a.dataDir } });
    });
    afterAll(async () => {
      await worker?.stop('SIGKILL');
      await b?.stop();
      await a?.stop();
      await deleteNamespace(NATS_TEST_URL, namespace).catch(() => undefined);
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    test('a traffic policy set on one replica is what the other serves within a second', async () => {
      await registerModel(a, 'shop', 'tiny-classifier.onnx');
      await addVariant(a, 'shop', 'w4a4', 'tiny-classifier-q.onnx');
      // B holds the model in its cache from here on.
      const before = await b.services.serving.catalog.get('shop');
      expect(before.variants.map((v) => v.tag).sort()).toEqual(['fp32', 'w4a4'].sort());

      const written = await setPolicy(a, 'shop', { routes: [{ variant: 'w4a4', weight: 100 }] });
      expect(written.errors).toBeUndefined();
      const version = written.data!.setTrafficPolicy.version;
      const elapsed = await msUntil('the new policy', async () => (await b.services.serving.catalog.get('shop')).policyVersion === version);
      expect(elapsed).toBeLessThan(AGREEMENT_MS);
      const seen = await b.services.serving.catalog.get('shop');
      expect(seen.policy.routes.filter((r) => r.weight > 0).map((r) => seen.variants.find((v) => v.id === r.variantId)?.tag)).toEqual(['w4a4']);
    });

    test('a variant added on one replica is served by the other within a second', async () => {
      await b.services.serving.catalog.get('shop');
      await addVariant(a, 'shop', 'w3a3', 'tiny-classifier-q.onnx');
      const elapsed = await msUntil('the new variant', async () => (await b.services.serving.catalog.get('shop')).variants.some((v) => v.tag === 'w3a3'));
      expect(elapsed).toBeLessThan(AGREEMENT_MS);
    });

    test('a gallery uploaded on one replica is searched on the other within a second', async () => {
      await registerModel(a, 'encoder', 'tiny-embedder.onnx', 'RETRIEVAL');
      const search = () => post(b, '/v2/models/encoder/search', png(imagePixels(1)), { 'content-type': 'image/png' });
      // B looks (no gallery yet), so its next look by the clock would be two seconds later.
      expect((await search()).status).toBe(404);
      const upload = await post(a, '/v2/models/encoder/gallery', { items: [1, 2, 3].map((seed) => ({ id: `item-${seed}`, image: png(imagePixels(seed)).toString('base64') })) });
      expect(upload.status).toBe(200);
      const elapsed = await msUntil('the gallery', async () => (await search()).status === 200);
      expect(elapsed).toBeLessThan(AGREEMENT_MS);
    });

    test("both replicas' subscribers see a job's progress and its result", async () => {
      await registerTinyClassifier(a);
      worker = startWorker({ NATS_URL: NATS_TEST_URL, FIMAQ_NATS_NAMESPACE: namespace, WORKER_ID: 'w', DATA_DIR: path.join(tmp, 'w'), COPY_ENGINE_STEPS: '5', COPY_ENGINE_STEP_MS: '100' });
      const id = (await quantize(b, {})).data!.quantizeModel.id;
      const watch = async (gateway: TestGateway) => {
        const seen: JobRecord[] = [];
        for await (const job of gateway.services.pubSub.subscribe(JOB_UPDATED_TOPIC, id) as AsyncIterable<JobRecord>) {
          seen.push(job);
          if (job.status === 'succeeded' || job.status === 'failed') break;
        }
        return seen;
      };
      const [onA, onB] = await Promise.all([watch(a), watch(b)]);
      for (const seen of [onA, onB]) {
        expect(seen.some((job) => job.status === 'running')).toBe(true);
        const progress = seen.map((job) => job.progress);
        expect(progress).toEqual([...progress].sort((x, y) => x - y));
        expect(seen.at(-1)).toMatchObject({ status: 'succeeded' });
        expect(seen.at(-1)!.variantId).toEqual(expect.any(String));
      }
      // One variant for the job, whichever replica applied the worker's events.
      const variants = await waitFor('the variant', async () => {
        const all = await a.services.registry.listVariants((await a.services.registry.getModel('tiny')).id);
        const ofJob = all.filter((v) => v.config.jobId === id);
        return ofJob.length > 0 ? ofJob : undefined;
      });
      expect(variants).toHaveLength(1);
    }, 60_000);
  });
});
