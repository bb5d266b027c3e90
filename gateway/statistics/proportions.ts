import { normalQuantile, regularizedBeta } from './distributions';

/** An estimate with the two-sided interval that holds it at the stated confidence. */
export interface Interval {
  estimate: number;
  lower: number;
  upper: number;
}

function checkConfidence(confidence: number): void {
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must lie in (0, 1), got ${confidence}`);
}

function checkCounts(successes: number, trials: number): void {
  if (!Number.isInteger(successes) || !Number.isInteger(trials) || successes < 0 || trials < 0 || successes > trials) {
    throw new RangeError(`counts must be integers with 0 <= successes <= trials, got ${successes}/${trials}`);
  }
}

/**
 * Wilson's score interval for a proportion: close to nominal coverage even for small counts and
 * proportions near 0 or 1, where the normal (Wald) interval fails. With no trials: [0, 1].
 */
export function wilsonInterval(successes: number, trials: number, confidence: number): Interval {
  checkCounts(successes, trials);
  checkConfidence(confidence);
  if (trials === 0) return { estimate: NaN, lower: 0, upper: 1 };
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const p = successes / trials;
  const z2n = (z * z) / trials;
  const centre = (p + z2n / 2) / (1 + z2n);
  const half = (z * Math.sqrt((p * (1 - p)) / trials + z2n / (4 * trials))) / (1 + z2n);
  return { estimate: p, lower: Math.max(0, centre - half), upper: Math.min(1, centre + half) };
}

/** The beta quantile by bisection: exact to 1e-12, which is all an interval bound needs. */
function betaQuantile(probability: number, a: number, b: number): number {
  let low = 0;
  let high = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (low + high) / 2;
    if (regularizedBeta(mid, a, b) < probability) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

/** The Clopper-Pearson ("exact") interval: never below nominal coverage, at the price of width. */
export function clopperPearsonInterval(successes: number, trials: number, confidence: number): Interval {
  checkCounts(successes, trials);
  checkConfidence(confidence);
  if (trials === 0) return { estimate: NaN, lower: 0, upper: 1 };
  const alpha = 1 - confidence;
  return {
    estimate: successes / trials,
    lower: successes === 0 ? 0 : betaQuantile(alpha / 2, successes, trials - successes + 1),
    upper: successes === trials ? 1 : betaQuantile(1 - alpha / 2, successes + 1, trials - successes),
  };
}

/**
 * The difference p1 − p2 of two independent proportions, with Newcombe's hybrid score interval
 * (his method 10, built from the two Wilson intervals): good coverage where the Wald interval
 * of the difference is too narrow.
 */
export function proportionDifference(successes1: number, trials1: number, successes2: number, trials2: number, confidence: number): Interval {
  const one = wilsonInterval(successes1, trials1, confidence);
  const two = wilsonInterval(successes2, trials2, confidence);
  if (trials1 === 0 || trials2 === 0) return { estimate: NaN, lower: -1, upper: 1 };
  const d = one.estimate - two.estimate;
  return {
    estimate: d,
    lower: d - Math.sqrt((one.estimate - one.lower) ** 2 + (two.upper - two.estimate) ** 2),
    upper: d + Math.sqrt((one.upper - one.estimate) ** 2 + (two.estimate - two.lower) ** 2),
  };
}

/** Paired outcomes of two variants on the same rows: how many each got right alone or together. */
export interface PairedCounts {
  /** Both right. */
  both: number;
  /** Only the first right. */
  onlyFirst: number;
  /** Only the second right. */
  onlySecond: number;
  /** Both wrong. */
  neither: number;
}

/**
 * The difference in accuracy (first − second) on paired rows, with Newcombe's interval for paired
 * proportions (his method 10: Wilson intervals of the two marginals joined through the phi
 * correlation of the pairs). Pairing removes the rows both get right or wrong from the noise, so
 * a paired interval is far narrower than an unpaired one on the same traffic.
 */
export function pairedDifference(counts: PairedCounts, confidence: number): Interval {
  const { both, onlyFirst, onlySecond, neither } = counts;
  const n = both + onlyFirst + onlySecond + neither;
  if (n === 0) return { estimate: NaN, lower: -1, upper: 1 };
  const first = wilsonInterval(both + onlyFirst, n, confidence);
  const second = wilsonInterval(both + onlySecond, n, confidence);
  const d = first.estimate - second.estimate;
  const denominator = (both + onlyFirst) * (onlySecond + neither) * (both + onlySecond) * (onlyFirst + neither);
  // Newcombe's continuity correction: a positive numerator shrinks by n/2, never below zero.
  const raw = both * neither - onlyFirst * onlySecond;
  const numerator = raw > 0 ? Math.max(raw - n / 2, 0) : raw;
  const phi = denominator === 0 ? 0 : numerator / Math.sqrt(denominator);
  const dl1 = first.estimate - first.lower;
  const du1 = first.upper - first.estimate;
  const dl2 = second.estimate - second.lower;
  const du2 = second.upper - second.estimate;
  return {
    estimate: d,
    lower: Math.max(-1, d - Math.sqrt(Math.max(0, dl1 ** 2 - 2 * phi * dl1 * du2 + du2 ** 2))),
    upper: Math.min(1, d + Math.sqrt(Math.max(0, du1 ** 2 - 2 * phi * du1 * dl2 + dl2 ** 2))),
  };
}
