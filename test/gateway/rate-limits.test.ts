import { RateLimiter, TokenBuckets } from '../../gateway/auth/rate-limits';
import type { Principal } from '../../gateway/auth/roles';
import { GatewayError, RetryLaterError } from '../../gateway/errors';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';

/** A clock the test moves by hand. */
function manualClock() {
  let ms = 0;
  return { now: () => ms, advance: (by: number) => (ms += by) };
}

const principal = (tokenId: string): Principal => ({ tokenId, name: tokenId, role: 'inference' });

describe('token buckets', () => {
  test('a burst is granted, then one request per 1/rate seconds, with the wait announced', () => {
    const clock = manualClock();
    const buckets = new TokenBuckets({ perSecond: 4, burst: 3 }, clock.now);
    expect([buckets.take('a'), buckets.take('a'), buckets.take('a')]).toEqual([0, 0, 0]);
    expect(buckets.take('a')).toBeCloseTo(0.25);
    clock.advance(100);
    expect(buckets.take('a')).toBeCloseTo(0.15);
    clock.advance(150);
    expect(buckets.take('a')).toBe(0);
    // Another key has its own bucket.
    expect(buckets.take('b')).toBe(0);
  });

  test('a bucket never holds more than the burst, however long it was idle', () => {
    const clock = manualClock();
    const buckets = new TokenBuckets({ perSecond: 10, burst: 2 }, clock.now);
    buckets.take('a');
    clock.advance(3_600_000);
    expect([buckets.take('a'), buckets.take('a')]).toEqual([0, 0]);
    expect(buckets.take('a')).toBeGreaterThan(0);
  });

  test('rate 0 is unlimited', () => {
    const buckets = new TokenBuckets({ perSecond: 0, burst: 1 }, () => 0);
    for (let i = 0; i < 100; i++) expect(buckets.take('a')).toBe(0);
  });

  test('the limiter refuses with TOO_MANY_REQUESTS and whole seconds to wait; callers without a token are keyed by address', () => {
    const clock = manualClock();
    const limiter = new RateLimiter({ inference: { perSecond: 1, burst: 1 }, graphql: { perSecond: 0, burst: 1 } }, clock.now);
    limiter.check('inference', principal('t1'), '10.0.0.1');
    let refusal: unknown;
    try {
      limiter.check('inference', principal('t1'), '10.0.0.1');
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(RetryLaterError);
    expect((refusal as GatewayError).httpStatus).toBe(429);
    expect((refusal as RetryLaterError).retryAfterSeconds).toBe(1);
    // Same address, other token: its own bucket. No token: the address's bucket.
    expect(() => limiter.check('inference', principal('t2'), '10.0.0.1')).not.toThrow();
    expect(() => limiter.check('inference', undefined, '10.0.0.1')).not.toThrow();
    expect(() => limiter.check('inference', undefined, '10.0.0.1')).toThrow(RetryLaterError);
    // The other plane is not spent.
    for (let i = 0; i < 10; i++) limiter.check('graphql', principal('t1'), '10.0.0.1');
  });
});

describe('rate limits on a running gateway', () => {
  let gateway: TestGateway;
  let otherToken: string;

  beforeAll(async () => {
    gateway = await startTestGateway({
      env: { RATE_LIMIT_INFERENCE_PER_SECOND: '1', RATE_LIMIT_INFERENCE_BURST: '3', RATE_LIMIT_GRAPHQL_PER_SECOND: '1', RATE_LIMIT_GRAPHQL_BURST: '3' },
    });
    const created = await gateway.graphql<{ createApiToken: { token: string } }>(`mutation { createApiToken(name: "second", role: admin) { token } }`);
    otherToken = created.data!.createApiToken.token;
  });
  afterAll(() => gateway?.stop());

  const infer = (token: string) =>
    fetch(`${gateway.url}/v2/models/absent/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [] }),
    });

  test('the data plane answers 429 with Retry-After and the protocol error once a token spent its burst; other tokens are served', async () => {
    const statuses: number[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 6; i++) {
      const response = await infer(ADMIN_TOKEN);
      statuses.push(response.status);
      if (response.status === 429) refused ??= response;
      else await response.body?.cancel();
    }
    // The burst is served (here: the model is unknown); a second of stall could refill one more, never all.
    expect(statuses.slice(0, 3)).toEqual([404, 404, 404]);
    expect(refused).toBeDefined();
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused!.json()).toEqual({ error: expect.stringMatching(/rate limit of the inference plane/) });
    // Express-served routes of the data plane share the bucket.
    const ready = await fetch(`${gateway.url}/v2/models/absent/ready`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(ready.status).toBe(429);
    expect(ready.headers.get('retry-after')).not.toBeNull();
    expect((await infer(otherToken)).status).toBe(404);
  });

  test('GraphQL answers 429 with Retry-After and TOO_MANY_REQUESTS once a token spent its burst', async () => {
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await gateway.graphql(`{ models { name } }`, {}, otherToken));
    expect(results.slice(0, 3).map((r) => r.status)).toEqual([200, 200, 200]);
    const refused = results.find((r) => r.status === 429);
    expect(refused?.errors?.[0].extensions?.code).toBe('TOO_MANY_REQUESTS');
    const response = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { authorization: `Bearer ${otherToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ models { name } }' }),
    });
    expect(response.status).toBe(429);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});
