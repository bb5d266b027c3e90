import type { ModelRecord, VariantRecord } from '../../gateway/registry/registry-types';
import { addShadow } from '../../plugins/fimaq/shadow';
import { startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { addVariant, registerModel } from './support/serving-fixtures';

const MODEL = 'shop';

interface PolicyView {
  version: number;
  routes: Array<{ variantTag: string; weight: number }>;
  shadows: Array<{ variantTag: string; mirrorPercent: number }>;
  updatedBy: string | null;
}

async function readPolicy(gateway: TestGateway): Promise<PolicyView> {
  const result = await gateway.graphql<{ trafficPolicy: PolicyView }>(
    `{ trafficPolicy(model: "${MODEL}") { version routes { variantTag weight } shadows { variantTag mirrorPercent } updatedBy } }`,
  );
  if (result.errors) throw new Error(result.errors[0].message);
  return result.data!.trafficPolicy;
}

function setPolicy(gateway: TestGateway, policy: Record<string, unknown>, expectedVersion?: number) {
  return gateway.graphql<{ setTrafficPolicy: PolicyView }>(
    `mutation($model: String!, $policy: TrafficPolicyInput!, $expectedVersion: Int) {
      setTrafficPolicy(model: $model, policy: $policy, expectedVersion: $expectedVersion) {
        version routes { variantTag weight } shadows { variantTag mirrorPercent } updatedBy } }`,
    { model: MODEL, policy, expectedVersion },
  );
}

/** The versions of the model's audited policy changes, oldest first. */
async function auditedVersions(gateway: TestGateway, model: ModelRecord): Promise<number[]> {
  const entries = await gateway.services.audit.list({ subjectType: 'model', subjectId: model.id, limit: 1000 });
  return entries
    .filter((e) => e.action === 'traffic_policy.set')
    .map((e) => e.details.version as number)
    .reverse();
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function writesSuite(dialect: Dialect) {
  let gateway: TestGateway;
  let model: ModelRecord;
  let variants: Map<string, VariantRecord>;
  const variant = (tag: string) => variants.get(tag)!;

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-classifier-q.onnx');
    await addVariant(gateway, MODEL, 'w3a3', 'tiny-classifier-q.onnx');
    const { registry } = gateway.services;
    model = await registry.getModel(MODEL);
    variants = new Map((await registry.listVariants(model.id)).map((v) => [v.tag, v]));
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  beforeEach(async () => {
    // Every test starts from one known policy, read through the cache so it is warm.
    const reset = await setPolicy(gateway, { routes: [{ variant: 'fp32', weight: 1 }] });
    expect(reset.errors).toBeUndefined();
    await readPolicy(gateway);
  });

  test('two changes computed from the current policy, racing, both land', async () => {
    const before = await readPolicy(gateway);
    const { serving } = gateway.services;
    const moveWeight = serving.trafficPolicies.update(
      MODEL,
      ({ policy }) => ({ ...policy, routes: [{ variantId: variant('fp32').id, weight: 9 }, { variantId: variant('w4a4').id, weight: 1 }] }),
      { actor: 'canary-controller' },
    );
    await Promise.all([addShadow(serving, model, variant('w3a3'), 100, 'fimaq-job:race'), moveWeight]);

    const after = await readPolicy(gateway);
    expect(after.version).toBe(before.version + 2);
    expect(after.routes).toEqual([{ variantTag: 'fp32', weight: 9 }, { variantTag: 'w4a4', weight: 1 }]);
    expect(after.shadows).toEqual([{ variantTag: 'w3a3', mirrorPercent: 100 }]);
    expect(await auditedVersions(gateway, model)).toEqual(range(1, before.version + 2));
  });

  test('a shadow registration racing a pinned replacement: the shadow always lands, the replacement lands or gets CONFLICT', async () => {
    const before = await readPolicy(gateway);
    const { serving } = gateway.services;
    // What setTrafficPolicy(model, policy, expectedVersion) does, started first so that on an
    // idle machine it reads and writes first and the shadow registration has to re-read.
    const replacement = serving.trafficPolicies.update(
      MODEL,
      () => ({ routes: [{ variantId: variant('fp32').id, weight: 1 }, { variantId: variant('w4a4').id, weight: 1 }], shadows: [], stickyHeader: null, batching: null }),
      { actor: 'admin', expectedVersion: before.version },
    );
    const [replaced] = await Promise.allSettled([replacement, addShadow(serving, model, variant('w3a3'), 50, 'fimaq-job:race')]);

    const after = await readPolicy(gateway);
    expect(after.shadows).toEqual([{ variantTag: 'w3a3', mirrorPercent: 50 }]);
    if (replaced.status === 'fulfilled') {
      expect(replaced.value.policyVersion).toBe(before.version + 1);
      expect(after.routes).toEqual([{ variantTag: 'fp32', weight: 1 }, { variantTag: 'w4a4', weight: 1 }]);
      expect(after.version).toBe(before.version + 2);
    } else {
      // The shadow registration wrote first: the replacement was based on a stale version.
      expect(replaced.reason).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`is no longer version ${before.version}`) });
      expect(after.routes).toEqual([{ variantTag: 'fp32', weight: 1 }]);
      expect(after.version).toBe(before.version + 1);
    }
    expect(await auditedVersions(gateway, model)).toEqual(range(1, after.version));
  });

  test('two setTrafficPolicy calls pinned to the same version: exactly one wins, the other gets CONFLICT and writes nothing', async () => {
    const before = await readPolicy(gateway);
    const candidates = [
      { routes: [{ variant: 'w4a4', weight: 1 }] },
      { routes: [{ variant: 'fp32', weight: 1 }], shadows: [{ variant: 'w3a3', mirrorPercent: 10 }] },
    ];
    const results = await Promise.all(candidates.map((policy) => setPolicy(gateway, policy, before.version)));

    const winners = results.filter((r) => r.data?.setTrafficPolicy);
    const losers = results.filter((r) => r.errors);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(losers[0].errors![0].extensions?.code).toBe('CONFLICT');
    expect(losers[0].data?.setTrafficPolicy ?? null).toBeNull();
    const won = winners[0].data!.setTrafficPolicy;
    expect(won.version).toBe(before.version + 1);

    const after = await readPolicy(gateway);
    expect(after).toEqual(won);
    expect(await auditedVersions(gateway, model)).toEqual(range(1, before.version + 1));
  });

  test('a stale or malformed expectedVersion changes nothing', async () => {
    const before = await readPolicy(gateway);
    const stale = await setPolicy(gateway, { routes: [{ variant: 'w4a4', weight: 1 }] }, before.version - 1);
    expect(stale.errors?.[0].extensions?.code).toBe('CONFLICT');
    expect(stale.errors?.[0].message).toMatch(/read it again/);
    const negative = await setPolicy(gateway, { routes: [{ variant: 'w4a4', weight: 1 }] }, -1);
    expect(negative.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    expect(negative.errors?.[0].message).toMatch(/expectedVersion must be a non-negative integer/);
    expect(await readPolicy(gateway)).toEqual(before);

    const current = await setPolicy(gateway, { routes: [{ variant: 'w4a4', weight: 1 }] }, before.version);
    expect(current.data!.setTrafficPolicy.version).toBe(before.version + 1);
  });

  test('a change that validation refuses writes nothing and is not retried', async () => {
    const before = await readPolicy(gateway);
    let changeCalls = 0;
    const refused = gateway.services.serving.trafficPolicies.update(
      MODEL,
      ({ policy }) => {
        changeCalls++;
        return { ...policy, routes: [{ variantId: 'not-a-variant', weight: 1 }] };
      },
      { actor: 'canary-controller' },
    );
    await expect(refused).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
    expect(changeCalls).toBe(1);
    expect(await readPolicy(gateway)).toEqual(before);
  });

  test('the shadow registration keeps a change another replica made, and this replica sees its own write at once', async () => {
    // A second gateway on the same database: the PostgreSQL URL, or the directory of the SQLite file.
    const shared: Record<string, string> = dialect === 'postgres' ? { DATABASE_URL: gateway.services.config.databaseUrl! } : { DATA_DIR: gateway.dataDir };
    const replica = await startTestGateway({ dialect, env: shared });
    try {
      // Warms this replica's cache just before the other replica changes the policy.
      const before = await readPolicy(gateway);
      const elsewhere = await setPolicy(replica, { routes: [{ variant: 'fp32', weight: 3 }, { variant: 'w4a4', weight: 1 }] }, before.version);
      expect(elsewhere.errors).toBeUndefined();

      await addShadow(gateway.services.serving, model, variant('w3a3'), 100, 'fimaq-job:replica');
      const expected = {
        version: before.version + 2,
        routes: [{ variantTag: 'fp32', weight: 3 }, { variantTag: 'w4a4', weight: 1 }],
        shadows: [{ variantTag: 'w3a3', mirrorPercent: 100 }],
        updatedBy: 'fimaq-job:replica',
      };
      // Read through this replica's cache: its own write is visible at once.
      expect(await readPolicy(gateway)).toEqual(expected);
      expect(await readPolicy(replica)).toMatchObject({ version: expected.version });
    } finally {
      await replica.stop();
    }
  });
}

describe('traffic policy writes are atomic read-modify-writes (SQLite)', () => writesSuite('sqlite'));
describeWithPostgres('traffic policy writes are atomic read-modify-writes (PostgreSQL)', () => writesSuite('postgres'));
