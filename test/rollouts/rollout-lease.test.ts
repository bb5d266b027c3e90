import { createRolloutsPlugin } from '../../plugins/rollouts';
import { RolloutRepository } from '../../plugins/rollouts/rollout-repository';
import { startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { addVariant, registerModel } from '../serving/support/serving-fixtures';
import { startRollout } from './support/rollout-fixtures';

/** The controller lease: one row update decides who acts on a rollout, on any number of replicas. */
function suite(dialect: Dialect) {
  let gateway: TestGateway;
  let repository: RolloutRepository;
  let id: string;

  beforeAll(async () => {
    // A controller that never runs on its own: the test plays the replicas.
    gateway = await startTestGateway({ dialect, plugins: [createRolloutsPlugin({ config: { intervalMs: 3_600_000, leaseMs: 3_600_001 } })] });
    await registerModel(gateway, 'leased', 'tiny-classifier.onnx');
    await addVariant(gateway, 'leased', 'w4a4', 'tiny-classifier-q.onnx');
    id = (await startRollout(gateway, { model: 'leased', candidate: 'w4a4' })).data!.startRollout.id;
    repository = new RolloutRepository(gateway.services.database.db, gateway.services.audit);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('replicas racing for a free lease: exactly one wins, and only it renews', async () => {
    const owners = Array.from({ length: 8 }, (_, i) => `replica-${i}`);
    const won = await Promise.all(owners.map((owner) => repository.acquireLease(id, owner, 60_000)));
    expect(won.filter(Boolean)).toHaveLength(1);
    const holder = owners[won.indexOf(true)];
    expect(await repository.acquireLease(id, holder, 60_000)).toBe(true);
    for (const other of owners.filter((o) => o !== holder)) expect(await repository.acquireLease(id, other, 60_000)).toBe(false);
    await repository.releaseLeases(holder);
  });

  test('an expired lease passes to another replica; a released one at once', async () => {
    const now = new Date();
    expect(await repository.acquireLease(id, 'a', 1000, now)).toBe(true);
    expect(await repository.acquireLease(id, 'b', 1000, new Date(now.getTime() + 500))).toBe(false);
    expect(await repository.acquireLease(id, 'b', 1000, new Date(now.getTime() + 1500))).toBe(true);
    expect(await repository.acquireLease(id, 'a', 1000, new Date(now.getTime() + 1600))).toBe(false);
    await repository.releaseLeases('b');
    expect(await repository.acquireLease(id, 'a', 1000, new Date(now.getTime() + 1700))).toBe(true);
  });

  test('a state change is a compare-and-set on the version: a stale writer changes nothing', async () => {
    const current = (await repository.find(id))!;
    const event = { kind: 'paused' as const, stepIndex: 0, trafficPercent: 5, actor: 'test', reason: 'test', figures: [] };
    const audit = { actor: 'test', action: 'rollout.paused', subjectType: 'model', subjectId: current.modelId, details: {} };
    const [first, second] = await Promise.all([
      repository.transition(id, current.version, { status: 'paused' }, event, audit),
      repository.transition(id, current.version, { status: 'aborted' }, { ...event, kind: 'aborted' }, audit),
    ]);
    expect([first, second].filter(Boolean)).toHaveLength(1);
    const events = await repository.events(id);
    expect(events.map((e) => e.kind)).toEqual(['started', (first ?? second)!.status === 'paused' ? 'paused' : 'aborted']);
  });
}

describe('rollout lease (SQLite)', () => suite('sqlite'));
describeWithPostgres('rollout lease (PostgreSQL)', () => suite('postgres'));
