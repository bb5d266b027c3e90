import { chooseRoute, defaultPolicy, stableFraction, validatePolicy, type TrafficPolicy } from '../../gateway/serving/traffic-policy';
import type { VariantRecord } from '../../gateway/registry/registry-types';

const variant = (id: string, status: VariantRecord['status'] = 'ready', parentVariantId: string | null = 'a'): VariantRecord =>
  ({ id, tag: id, status, parentVariantId }) as VariantRecord;

const policy = (changes: Partial<TrafficPolicy>): TrafficPolicy => ({ routes: [], shadows: [], stickyHeader: 'x-routing-key', batching: null, ...changes });

/** A deterministic sequence in [0, 1) standing in for Math.random. */
function sequence(): () => number {
  let i = 0;
  return () => ((i++ * 0.6180339887) % 1);
}

describe('traffic policy', () => {
  test('the default policy routes to the original ready variant', () => {
    expect(defaultPolicy([variant('q', 'ready', 'a'), variant('a', 'ready', null)]).routes).toEqual([{ variantId: 'a', weight: 1 }]);
    expect(defaultPolicy([variant('a', 'retired', null), variant('q')]).routes).toEqual([{ variantId: 'q', weight: 1 }]);
  });

  test('weights split traffic in proportion', () => {
    const random = sequence();
    const p = policy({ routes: [{ variantId: 'a', weight: 3 }, { variantId: 'b', weight: 1 }] });
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 4000; i++) counts[chooseRoute(p, () => true, undefined, random)!.primaryId as 'a' | 'b']++;
    expect(counts.a / 4000).toBeCloseTo(0.75, 2);
  });

  test('the same routing key always reaches the same variant, and keys spread over the weights', () => {
    const p = policy({ routes: [{ variantId: 'a', weight: 1 }, { variantId: 'b', weight: 1 }] });
    const first = chooseRoute(p, () => true, 'user-17')!.primaryId;
    for (let i = 0; i < 10; i++) expect(chooseRoute(p, () => true, 'user-17')!.primaryId).toBe(first);
    const toA = Array.from({ length: 2000 }, (_, i) => chooseRoute(p, () => true, `user-${i}`)!.primaryId).filter((id) => id === 'a').length;
    expect(toA / 2000).toBeGreaterThan(0.45);
    expect(toA / 2000).toBeLessThan(0.55);
    expect(stableFraction('x')).toBe(stableFraction('x'));
  });

  test('variants that cannot serve are skipped; none left means no route', () => {
    const p = policy({ routes: [{ variantId: 'a', weight: 9 }, { variantId: 'b', weight: 1 }] });
    for (let i = 0; i < 20; i++) expect(chooseRoute(p, (id) => id !== 'a', undefined, sequence())!.primaryId).toBe('b');
    expect(chooseRoute(p, () => false, undefined)).toBeUndefined();
  });

  test('shadows mirror their share, never the answering variant', () => {
    const random = sequence();
    const p = policy({ routes: [{ variantId: 'a', weight: 1 }], shadows: [{ variantId: 'q', mirrorPercent: 25 }, { variantId: 'a', mirrorPercent: 100 }] });
    let mirrored = 0;
    for (let i = 0; i < 4000; i++) {
      const choice = chooseRoute(p, () => true, undefined, random)!;
      expect(choice.shadowIds).not.toContain('a');
      mirrored += choice.shadowIds.length;
    }
    expect(mirrored / 4000).toBeCloseTo(0.25, 2);
  });

  test.each([
    ['no routes', policy({}), /at least one route/],
    ['an unknown variant', policy({ routes: [{ variantId: 'z', weight: 1 }] }), /not a variant of model m/],
    ['a failed variant', policy({ routes: [{ variantId: 'f', weight: 1 }] }), /f is failed/],
    ['a negative weight', policy({ routes: [{ variantId: 'a', weight: -1 }] }), /non-negative/],
    ['a repeated variant', policy({ routes: [{ variantId: 'a', weight: 1 }, { variantId: 'a', weight: 1 }] }), /once in routes/],
    ['a bad header name', policy({ routes: [{ variantId: 'a', weight: 1 }], stickyHeader: 'X Key' }), /lowercase header name/],
    ['a negative delay', policy({ routes: [{ variantId: 'a', weight: 1 }], batching: { maxBatchSize: 2, maxQueueDelayMs: -1 } }), /maxQueueDelayMs/],
  ])('validation refuses %s', (_name, p, message) => {
    expect(() => validatePolicy(p, [variant('a'), variant('f', 'failed')], 'm')).toThrow(message);
  });
});
