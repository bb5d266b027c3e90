import { binomialCdf } from './distributions';

/**
 * McNemar's exact test on paired outcomes: under "both variants are equally accurate" the rows
 * only one got right split 50/50 between them, so the discordant counts are Binomial(b + c, ½).
 * Returns the two-sided p-value and the one-sided one for "the first is worse than the second".
 */
export function mcnemarExact(onlyFirst: number, onlySecond: number): { twoSided: number; firstWorse: number } {
  const discordant = onlyFirst + onlySecond;
  if (discordant === 0) return { twoSided: 1, firstWorse: 1 };
  const smaller = Math.min(onlyFirst, onlySecond);
  return {
    twoSided: Math.min(1, 2 * binomialCdf(smaller, discordant, 0.5)),
    // P(first right alone at most this often) under the null.
    firstWorse: binomialCdf(onlyFirst, discordant, 0.5),
  };
}
