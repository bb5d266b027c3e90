import { emptyCounts, type RollupCounts } from '../../gateway/serving/metric-rollups';
import { compareAccuracy, compareErrorRates, compareLatency, compareMeanAveragePrecision } from '../../gateway/metrics/variant-comparison';
import { averagePrecisionAtK, pairedOutcome, scoreRow } from '../../gateway/serving/feedback-scores';
import { meanDifferenceInterval, meanInterval } from '../../gateway/statistics/means';
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

  test('mAP@k: paired from the per-query AP differences, else Welch on each variant\'s own queries', () => {
    const a = counts({ feedback: 40, averagePrecisionSum: 24, averagePrecisionSqSum: 16 });
    const b = counts({ feedback: 30, averagePrecisionSum: 15, averagePrecisionSqSum: 9 });
    const deltas = { n: 30, sum: -3, sumOfSquares: 1.2 };
    const paired = compareMeanAveragePrecision(a, b, 0.95, deltas);
    expect(paired).toMatchObject({ paired: true, samples: 30, difference: meanInterval(deltas, 0.95, [-1, 1]) });
    expect(paired.a).toEqual(meanInterval({ n: 40, sum: 24, sumOfSquares: 16 }, 0.95, [0, 1]));
    expect(paired.significant).toBe(paired.difference!.upper < 0);
    const unpaired = compareMeanAveragePrecision(a, b, 0.95);
    expect(unpaired).toMatchObject({ paired: false, samples: 70 });
    expect(unpaired.difference).toEqual(meanDifferenceInterval({ n: 40, sum: 24, sumOfSquares: 16 }, { n: 30, sum: 15, sumOfSquares: 9 }, 0.95, [-1, 1]));
    expect(compareMeanAveragePrecision(a, counts({}), 0.95)).toMatchObject({ b: null, difference: null, significant: false });
  });

  test('AP@k, hits and paired outcomes of retrieval rows', () => {
    const relevant = new Set(['a', 'b', 'c']);
    // Relevant at ranks 1 and 3 of k = 4: (1/1 + 2/3) / min(4, 3).
    expect(averagePrecisionAtK(['a', 'x', 'b', 'y'], relevant)).toBeCloseTo((1 + 2 / 3) / 3, 12);
    // One relevant item at rank 2 of k = 2: (1/2) / min(2, 1).
    expect(averagePrecisionAtK(['x', 'a'], new Set(['a']))).toBe(0.5);
    expect(averagePrecisionAtK(['a', 'b', 'c'], relevant)).toBe(1);
    expect(scoreRow(['x', 'y'], relevant)).toEqual({ hit: false, averagePrecision: 0 });
    expect(scoreRow(3, 3)).toEqual({ hit: true });
    const outcome = pairedOutcome(
      [scoreRow(['a', 'x'], relevant), scoreRow(['x', 'y'], relevant), scoreRow(['x', 'a'], relevant)],
      [scoreRow(['x', 'y'], relevant), scoreRow(['b', 'x'], relevant), scoreRow(['a', 'b'], relevant)],
    );
    expect(outcome).toMatchObject({ both: 1, primaryOnly: 1, shadowOnly: 1, neither: 0 });
    expect(outcome.averagePrecisionDeltas).toEqual([-0.5, 0.5, 1 - 0.25]);
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
