/**
 * The work of a quantization, stage by stage, as progress reports carry it: what a job's ETA and
 * progress figure are built from (workers/jobs/job-eta.ts).
 */

/**
 * One stage: `done` of `total` units (sites, iterations, images), and a first-run estimate of
 * one unit's cost in seconds on the reference machine (this project's two-core CPU, on the demo
 * classifier). Only the estimates' ratios matter: the reader scales them by the pace it
 * measures, and replaces a stage's estimate by that stage's own pace once it runs.
 */
export interface StageWork {
  stage: string;
  done: number;
  total: number;
  unitSeconds: number;
}

/** Share of the work done (0..1), each stage weighted by its estimated cost. */
export function workFraction(work: readonly StageWork[]): number {
  const total = work.reduce((sum, w) => sum + w.total * w.unitSeconds, 0);
  return total > 0 ? work.reduce((sum, w) => sum + Math.min(w.done, w.total) * w.unitSeconds, 0) / total : 0;
}
