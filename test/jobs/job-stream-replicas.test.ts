import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { loadFimaqConfig } from '../../plugins/fimaq/fimaq-config';
import { ensureJobStreams, jobStreamNames } from '../../workers/common/jobs/streams';
import { loadWorkerConfig } from '../../workers/jobs/worker-config';
import { describeWithNats, NATS_TEST_URL } from '../support/services';
import { deleteNamespace, uniqueNamespace } from './support/jobs-harness';

test('FIMAQ_NATS_REPLICAS is read alike by the gateway plugin and the worker (1 by default, 1..5)', () => {
  expect([loadFimaqConfig({}).natsReplicas, loadWorkerConfig({}).natsReplicas]).toEqual([1, 1]);
  expect([loadFimaqConfig({ FIMAQ_NATS_REPLICAS: '3' }).natsReplicas, loadWorkerConfig({ FIMAQ_NATS_REPLICAS: '3' }).natsReplicas]).toEqual([3, 3]);
  expect(() => loadFimaqConfig({ FIMAQ_NATS_REPLICAS: '6' })).toThrow(/FIMAQ_NATS_REPLICAS/);
  expect(() => loadWorkerConfig({ FIMAQ_NATS_REPLICAS: '0' })).toThrow(/FIMAQ_NATS_REPLICAS/);
});

describeWithNats('job streams created with replicas', () => {
  test('the count reaches the server: 1 on this single node, more refused by it', async () => {
    const nc = await connect({ servers: NATS_TEST_URL });
    const [one, three] = [uniqueNamespace(), uniqueNamespace()];
    try {
      await ensureJobStreams(nc, { namespace: one, replicas: 1 });
      const jsm = await jetstreamManager(nc);
      const names = jobStreamNames(one);
      for (const stream of [names.jobsStream, names.eventsStream]) expect((await jsm.streams.info(stream)).config.num_replicas).toBe(1);
      await expect(ensureJobStreams(nc, { namespace: three, replicas: 3 })).rejects.toThrow(/replicas|peers|resources/i);
    } finally {
      await nc.close();
      await deleteNamespace(NATS_TEST_URL, one).catch(() => undefined);
      await deleteNamespace(NATS_TEST_URL, three).catch(() => undefined);
    }
  });
});
