import { performance } from 'node:perf_hooks';

/**
 * Medians of several functions timed in alternation: after `warmup` calls of each, rounds of
 * `reps` calls of each in turn for `seconds` in all (and at least `minSamples` of the first), so
 * load elsewhere on the machine weighs on every function alike.
 */
export async function interleavedMedians(
  fns: (() => Promise<unknown>)[],
  options: { seconds: number; reps: number; warmup: number; minSamples: number },
): Promise<number[]> {
  for (const fn of fns) for (let i = 0; i < options.warmup; i++) await fn();
  const times: number[][] = fns.map(() => []);
  const until = performance.now() + options.seconds * 1000;
  while (performance.now() < until || times[0].length < options.minSamples) {
    for (let k = 0; k < fns.length; k++) {
      for (let r = 0; r < options.reps; r++) {
        const t0 = performance.now();
        await fns[k]();
        times[k].push(performance.now() - t0);
      }
    }
  }
  return times.map((t) => t.sort((x, y) => x - y)[Math.floor(t.length / 2)]);
}
