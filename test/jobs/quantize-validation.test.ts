import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FimaqTables } from '../../plugins/fimaq/job-tables';
import { createRolloutsPlugin } from '../../plugins/rollouts';
import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { describeWithNats, NATS_TEST_URL } from '../support/services';
import { deleteNamespace, fimaqPlugin, npyImages, quantize, queuedJobMessages, registerTinyClassifier, uniqueNamespace } from './support/jobs-harness';

describeWithNats('quantizeModel refuses invalid input before any job exists', () => {
  let gateway: TestGateway;
  const namespace = uniqueNamespace();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'jobs-invalid-'));
  const wrongSize = path.join(tmp, 'images-32x32.npy');

  beforeAll(async () => {
    fs.writeFileSync(wrongSize, npyImages([16, 32, 32]));
    gateway = await startTestGateway({ plugins: [fimaqPlugin({ config: { natsNamespace: namespace } }), createRolloutsPlugin()], env: { NATS_URL: NATS_TEST_URL } });
    await registerTinyClassifier(gateway);
  });

  afterAll(async () => {
    await gateway.stop();
    await deleteNamespace(NATS_TEST_URL, namespace);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test.each([
    ['an unknown model', { model: 'nope' }, 'NOT_FOUND', /no model named "nope"/],
    ['an unknown base variant', { baseVariant: 'w2a2-none' }, 'NOT_FOUND', /has no variant "w2a2-none"/],
    ['unsupported bits', { bits: 'W5A5' }, 'BAD_USER_INPUT', /QuantizationBits/],
    ['a calibration set smaller than calibSize', { calibSize: 5000 }, 'BAD_USER_INPUT', /has 1024 images, fewer than the 5000/],
    ['a reconstruction size beyond the calibration set', { reconSize: 2000 }, 'BAD_USER_INPUT', /fewer than the 2000/],
    ['calibration images of the wrong size', { calibration: { path: wrongSize } }, 'BAD_USER_INPUT', /28x28/],
    ['a missing calibration set', { calibration: { path: path.join(tmp, 'missing') } }, 'BAD_USER_INPUT', /not found/],
    ['both a path and an artifact', { calibration: { path: wrongSize, artifactSha256: 'a'.repeat(64) } }, 'BAD_USER_INPUT', /exactly one of path/],
    ['a retrieval reference for a classification model', { reference: 'GALLERY' }, 'BAD_USER_INPUT', /reference applies to retrieval models/],
    ['an unknown uploaded calibration file', { calibration: { artifactSha256: 'a'.repeat(64), format: 'npy' } }, 'NOT_FOUND', /no artifact/],
    ['a rollout whose steps do not increase', { rollout: { steps: [{ trafficPercent: 50 }, { trafficPercent: 10 }, { trafficPercent: 100 }] } }, 'BAD_USER_INPUT', /increase/],
    ['a rollout with a confidence of 1', { rollout: { guardrails: { confidence: 1 } } }, 'BAD_USER_INPUT', /confidence/],
  ])('%s', async (_name, input, code, message) => {
    const result = await quantize(gateway, input);
    expect(result.data?.quantizeModel).toBeUndefined();
    expect(result.errors?.[0].extensions?.code).toBe(code);
    expect(result.errors?.[0].message).toMatch(message);
  });

  test('no job row, no outbox entry and nothing published', async () => {
    const jobs = await gateway.graphql<{ quantizationJobs: unknown[] }>(`{ quantizationJobs { id } }`);
    expect(jobs.data!.quantizationJobs).toEqual([]);
    const outbox = await gateway.services.database.db.withTables<FimaqTables>().selectFrom('job_outbox').selectAll().execute();
    expect(outbox).toEqual([]);
    expect(await queuedJobMessages(NATS_TEST_URL, namespace)).toBe(0);
  });
});
