import fc from 'fast-check';
import { binomialCdf, normalQuantile } from '../../gateway/statistics/distributions';
import { histogramQuantile, histogramQuantileInterval, quantileRatio } from '../../gateway/statistics/histogram-quantiles';
import { meanDifferenceInterval, meanInterval, studentQuantile } from '../../gateway/statistics/means';
import { mcnemarExact } from '../../gateway/statistics/mcnemar';
import { clopperPearsonInterval, pairedDifference, proportionDifference, wilsonInterval } from '../../gateway/statistics/proportions';

/** Tabulated values (R: qnorm, binom.test, prop.test without correction, mcnemar exact via binom.test). */
describe('statistics shared by comparisons and rollout guardrails', () => {
  test('normal quantiles and binomial tails match their tables', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 6);
    expect(normalQuantile(0.95)).toBeCloseTo(1.644854, 6);
    expect(normalQuantile(0.001)).toBeCloseTo(-3.090232, 6);
    expect(binomialCdf(2, 12, 0.5)).toBeCloseTo(79 / 4096, 12);
    expect(binomialCdf(30, 100, 0.25)).toBeCloseTo(0.8962128, 6);
  });

  test('Wilson and Clopper-Pearson intervals match their tables', () => {
    const wilson = wilsonInterval(8, 10, 0.95);
    expect(wilson.lower).toBeCloseTo(0.4901625, 6);
    expect(wilson.upper).toBeCloseTo(0.9433178, 6);
    const exact = clopperPearsonInterval(8, 10, 0.95);
    expect(exact.lower).toBeCloseTo(0.4439045, 6);
    expect(exact.upper).toBeCloseTo(0.9747893, 6);
    expect(clopperPearsonInterval(0, 20, 0.95)).toMatchObject({ lower: 0 });
    expect(clopperPearsonInterval(0, 20, 0.95).upper).toBeCloseTo(0.1684335, 6);
    expect(() => wilsonInterval(3, 2, 0.95)).toThrow(RangeError);
    expect(() => wilsonInterval(1, 2, 1)).toThrow(/confidence/);
  });

  test('intervals hold their estimate and narrow as evidence grows', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0.8, 0.9, 0.95, 0.99), (n, p, c) => {
        const k = Math.round(n * p);
        for (const interval of [wilsonInterval(k, n, c), clopperPearsonInterval(k, n, c)]) {
          expect(interval.lower).toBeLessThanOrEqual(interval.estimate + 1e-12);
          expect(interval.upper).toBeGreaterThanOrEqual(interval.estimate - 1e-12);
        }
        const more = wilsonInterval(k * 4, n * 4, c);
        expect(more.upper - more.lower).toBeLessThan(wilsonInterval(k, n, c).upper - wilsonInterval(k, n, c).lower + 1e-12);
      }),
    );
  });

  test("Student's t quantiles match their table, and the mean's interval covers the truth at its confidence", () => {
    expect(studentQuantile(0.975, 1)).toBeCloseTo(12.7062, 3);
    expect(studentQuantile(0.975, 3)).toBeCloseTo(3.182446, 5);
    expect(studentQuantile(0.975, 10)).toBeCloseTo(2.228139, 5);
    expect(studentQuantile(0.95, 29)).toBeCloseTo(1.699127, 5);
    expect(studentQuantile(0.025, 10)).toBeCloseTo(-2.228139, 5);
    expect(studentQuantile(0.995, 1e6)).toBeCloseTo(normalQuantile(0.995), 4);
    // Mean 0.9525, s = 0.0386221, t(0.975, 3) = 3.182446: 0.9525 ∓ 0.0614564, the upper end clipped to the cosine's range.
    const values = [0.9, 0.95, 0.97, 0.99];
    const moments = { n: 4, sum: values.reduce((a, b) => a + b, 0), sumOfSquares: values.reduce((a, b) => a + b * b, 0) };
    const interval = meanInterval(moments, 0.95, [-1, 1]);
    expect(interval.estimate).toBeCloseTo(0.9525, 10);
    expect(interval.lower).toBeCloseTo(0.8910436, 6);
    expect(interval.upper).toBe(1);
    expect(meanInterval({ n: 0, sum: 0, sumOfSquares: 0 }, 0.95, [0, 1])).toMatchObject({ lower: 0, upper: 1 });
    expect(meanInterval({ n: 5, sum: 5, sumOfSquares: 5 }, 0.95, [0, 1])).toEqual({ estimate: 1, lower: 1, upper: 1 });
    // Coverage on samples of overlap@10-like values (multiples of 0.1): about 95 % of intervals hold the true mean.
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    let covered = 0;
    const trials = 2000;
    for (let t = 0; t < trials; t++) {
      let sum = 0;
      let sumOfSquares = 0;
      for (let i = 0; i < 60; i++) {
        const x = Math.min(10, Math.floor(random() * 4) + 7) / 10; // uniform on 0.7..1.0, mean 0.85
        sum += x;
        sumOfSquares += x * x;
      }
      const i = meanInterval({ n: 60, sum, sumOfSquares }, 0.95, [0, 1]);
      if (i.lower <= 0.85 && 0.85 <= i.upper) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.93);
    expect(covered / trials).toBeLessThan(0.97);
  });

  test("Welch's interval for a difference of two means, from moment sums", () => {
    const moments = (values: number[]) => ({ n: values.length, sum: values.reduce((a, b) => a + b, 0), sumOfSquares: values.reduce((a, b) => a + b * b, 0) });
    // scipy: Welch–Satterthwaite df = 4.959184, t(0.975, df) = 2.576958, se = sqrt(0.03).
    const interval = meanDifferenceInterval(moments([0.2, 0.4, 0.6, 0.8]), moments([0.5, 0.7, 0.9]), 0.95, [-1, 1]);
    expect(interval.estimate).toBeCloseTo(0.2, 12);
    expect(interval.lower).toBeCloseTo(-0.2463423, 6);
    expect(interval.upper).toBeCloseTo(0.6463423, 6);
    // Below two values on a side: the whole range; no spread on either side: zero width.
    expect(meanDifferenceInterval(moments([0.5]), moments([0.5, 0.7]), 0.95, [-1, 1])).toEqual({ estimate: expect.closeTo(0.1, 12), lower: -1, upper: 1 });
    const flat = meanDifferenceInterval(moments([0.5, 0.5]), moments([0.7, 0.7]), 0.95, [-1, 1]);
    expect(flat.estimate).toBeCloseTo(0.2, 12);
    expect([flat.lower, flat.upper]).toEqual([flat.estimate, flat.estimate]);
  });

  test("McNemar's exact test", () => {
    expect(mcnemarExact(2, 10).twoSided).toBeCloseTo(0.03857422, 7);
    expect(mcnemarExact(2, 10).firstWorse).toBeCloseTo(0.01928711, 7);
    expect(mcnemarExact(0, 0)).toEqual({ twoSided: 1, firstWorse: 1 });
    expect(mcnemarExact(5, 5).twoSided).toBe(1);
  });

  test('differences of proportions: Newcombe\'s unpaired example, and the paired interval covers the truth', () => {
    // Newcombe (1998), unpaired example 56/70 vs 48/80: Δ = 0.2, (0.0524, 0.3339).
    const unpaired = proportionDifference(56, 70, 48, 80, 0.95);
    expect(unpaired.lower).toBeCloseTo(0.0524, 3);
    expect(unpaired.upper).toBeCloseTo(0.3339, 3);

    // Paired rows where the first variant is right 90 % of the time and the second loses 3 points,
    // mostly on rows the first also finds hard: the interval must hold Δ = 0.03 about 95 % of the time.
    let state = 12345;
    const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 4294967296);
    let covered = 0;
    const trials = 400;
    for (let t = 0; t < trials; t++) {
      const counts = { both: 0, onlyFirst: 0, onlySecond: 0, neither: 0 };
      for (let i = 0; i < 500; i++) {
        const u = random();
        if (u < 0.86) counts.both++;
        else if (u < 0.9) counts.onlyFirst++;
        else if (u < 0.91) counts.onlySecond++;
        else counts.neither++;
      }
      const interval = pairedDifference(counts, 0.95);
      if (interval.lower <= 0.03 && 0.03 <= interval.upper) covered++;
      // Pairing takes out the rows both get right: narrower than treating the two as independent.
      const n = 500;
      const independent = proportionDifference(counts.both + counts.onlyFirst, n, counts.both + counts.onlySecond, n, 0.95);
      expect(interval.upper - interval.lower).toBeLessThan(independent.upper - independent.lower);
    }
    expect(covered / trials).toBeGreaterThan(0.92);
    expect(pairedDifference({ both: 0, onlyFirst: 0, onlySecond: 0, neither: 0 }, 0.95)).toMatchObject({ lower: -1, upper: 1 });
  });

  test('histogram quantiles interpolate inside buckets and bound the quantile', () => {
    const histogram = { bounds: [1, 2, 4, 8], counts: [50, 30, 15, 4, 1] };
    expect(histogramQuantile(histogram, 0.5)).toBeCloseTo(1, 6);
    expect(histogramQuantile(histogram, 0.9)).toBeCloseTo(2 + 2 * (10 / 15), 6);
    expect(histogramQuantile(histogram, 1)).toBe(8);
    expect(histogramQuantile({ bounds: [1], counts: [0, 0] }, 0.5)).toBeNaN();
    const interval = histogramQuantileInterval(histogram, 0.9, 0.95);
    expect(interval.lower).toBeLessThanOrEqual(interval.estimate);
    expect(interval.upper).toBeGreaterThanOrEqual(interval.estimate);
    const same = quantileRatio(histogram, histogram, 0.5, 0.95);
    expect(same.estimate).toBe(1);
    expect(same.lower).toBeLessThanOrEqual(1);
    expect(same.upper).toBeGreaterThanOrEqual(1);
  });
});
