import { emptyCounts, type RollupCounts } from '../../gateway/serving/metric-rollups';
import { compareAccuracy, compareErrorRates, compareLatency } from '../../gateway/metrics/variant-comparison';
import { mcnemarExact } from '../../gateway/statistics/mcnemar';
import { pairedDifference, proportionDifference } from '../../gateway/statistics/proportions';

const counts = (patch: Partial<RollupCounts>): RollupCounts => ({ ...emptyCounts(), ...patch });

describe('variant comparison', () => {
  test('accuracy without pairs: Newcombe on each variant\'s own feedback, b − a', () => {
    const a = counts({ feedback: 200, correct: 180 });
    const b = counts({ feedback: 150, correct: 120 });
    const result = compareAccuracy(a, b, 0.95);
    expect(result.paired).toBe(false);
    expect(result.difference).toEqual(proportionDifference(120, 150, 180, 200, 0.95));
    expect(result.difference!.estimate).toBeCloseTo(0.8 - 0.9, 12);
    expect(result.significant).toBe(result.difference!.upper < 0);
    expect(result.pValue).toBeNull();
  });

  test('accuracy with pairs: the paired interval of b − a and McNemar', () => {
    const pairs = { both: 400, onlyFirst: 30, onlySecond: 8, neither: 62 };
    const result = compareAccuracy(counts({}), counts({}), 0.95, pairs);
    expect(result.paired).toBe(true);
    expect(result.samples).toBe(500);
    expect(result.a!.estimate).toBeCloseTo(430 / 500, 12);
    expect(result.b!.estimate).toBeCloseTo(408 / 500, 12);
    expect(result.difference).toEqual(pairedDifference({ both: 400, onlyFirst: 8, onlySecond: 30, neither: 62 }, 0.95));
    expect(result.pValue).toBe(mcnemarExact(30, 8).twoSided);
    expect(result.significant).toBe(true);
    // Pairing narrows the interval against treating the same rows as two samples.
    const unpaired = proportionDifference(408, 500, 430, 500, 0.95);
    expect(result.difference!.upper - result.difference!.lower).toBeLessThan(unpaired.upper - unpaired.lower);
  });

  test('no feedback on one side: no difference, not significant', () => {
    const result = compareAccuracy(counts({ feedback: 10, correct: 9 }), counts({}), 0.95);
    expect(result).toMatchObject({ b: null, difference: null, significant: false });
  });

  test('error rates and latency ratios', () => {
    const errors = compareErrorRates(counts({ requests: 1000, errors: 1 }), counts({ requests: 1000, errors: 40 }), 0.95);
    expect(errors.significant).toBe(true);
    expect(errors.difference!.lower).toBeGreaterThan(0);

    const fast = new Array(13).fill(0);
    fast[2] = 1000; // (2, 5] ms
    const slow = new Array(13).fill(0);
    slow[5] = 1000; // (20, 50] ms
    const latency = compareLatency(counts({ latencyBuckets: fast, computeBuckets: fast }), counts({ latencyBuckets: slow }), 0.95);
    expect(latency.endToEnd.map((q) => q.quantile)).toEqual([0.5, 0.95, 0.99]);
    for (const q of latency.endToEnd) {
      expect(q.significant).toBe(true);
      expect(q.ratio!.lower).toBeGreaterThan(1);
    }
    expect(latency.compute.every((q) => q.ratio === null && !q.significant)).toBe(true);
  });
});
