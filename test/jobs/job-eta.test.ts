/**
 * The ETA model and the progress reporter on a fake clock: stages at a constant pace give an
 * exact ETA, a stage whose pace differs from its estimate (or changes) is corrected, and the
 * percent never goes back.
 */
import type { JobProgressEvent, QuantizationJobSpec, WorkerCapabilities } from '../../workers/common/jobs/messages';
import type { JobDelivery, WorkerTransport } from '../../workers/common/jobs/transport';
import type { StageWork } from '../../workers/engine/work';
import { EtaModel } from '../../workers/jobs/job-eta';
import { JobPlan, ProgressReporter } from '../../workers/jobs/job-progress';

/** A job of two stages as FIMA-Q reports them: 40 sites estimated at 1 s each, then 1000 iterations at 0.1 s. */
function work(sites: number, iterations: number): StageWork[] {
  return [
    { stage: 'calibrate', done: sites, total: 40, unitSeconds: 1 },
    { stage: 'reconstruct', done: iterations, total: 1000, unitSeconds: 0.1 },
  ];
}

/** Runs the job on a fake clock: `siteSeconds` per site, then `iterationSeconds(i)` for iteration i; the ETA at every report against the truth. */
function run(siteSeconds: number, iterationSeconds: (iteration: number) => number): { at: number; eta: number | undefined; truth: number }[] {
  const model = new EtaModel();
  const reports: { at: number; eta: number | undefined }[] = [];
  let now = 1_000_000;
  const record = (w: StageWork[]) => {
    model.update(now, w);
    reports.push({ at: now, eta: model.remainingSeconds() });
  };
  record(work(0, 0));
  for (let site = 1; site <= 40; site++) {
    now += siteSeconds * 1000;
    record(work(site, 0));
  }
  for (let iteration = 1; iteration <= 1000; iteration++) {
    now += iterationSeconds(iteration) * 1000;
    if (iteration % 10 === 0) record(work(40, iteration));
  }
  return reports.map((r) => ({ ...r, truth: (now - r.at) / 1000 }));
}

const relativeError = (r: { eta: number | undefined; truth: number }) => Math.abs((r.eta as number) - r.truth) / r.truth;

describe('EtaModel', () => {
  test('no ETA before a stage has shown its pace', () => {
    const model = new EtaModel();
    model.update(0, work(0, 0));
    expect(model.remainingSeconds()).toBeUndefined();
    // The first site's time includes the stage's setup: the pace starts with the second.
    model.update(1000, work(1, 0));
    expect(model.remainingSeconds()).toBeUndefined();
    model.update(2000, work(2, 0));
    expect(model.remainingSeconds()).toBeCloseTo(38 + 100, 5);
  });

  test('stages at the pace of their estimates, scaled by the machine: the ETA is exact', () => {
    // A machine twice as slow as the reference: 2 s per site, 0.2 s per iteration.
    const reports = run(2, () => 0.2).filter((r) => r.truth > 0);
    expect(reports.length).toBeGreaterThan(100);
    for (const report of reports.slice(2)) expect(relativeError(report)).toBeLessThan(0.02);
  });

  test('a stage slower than its estimate is corrected once it runs', () => {
    // Iterations take 0.3 s where the calibration's pace predicts 0.1 s.
    const reports = run(1, () => 0.3).filter((r) => r.truth > 0);
    // Before reconstruction the estimate is all there is; a tenth of the stage later, the truth.
    expect(relativeError(reports[5])).toBeGreaterThan(0.5);
    for (const report of reports.filter((r) => r.truth < 0.9 * 300)) expect(relativeError(report)).toBeLessThan(0.05);
  });

  test('a stage whose pace changes halfway is followed', () => {
    const reports = run(1, (iteration) => (iteration <= 500 ? 0.1 : 0.2)).filter((r) => r.truth > 0);
    // At iteration 500, 100 s at the new pace remain: the ETA follows within the half minute the pace remembers.
    const atChange = reports.find((r) => r.truth <= 100) as { eta: number };
    expect(atChange.eta).toBeLessThan(60);
    for (const report of reports.filter((r) => r.truth <= 60)) expect(relativeError(report)).toBeLessThan(0.3);
    for (const report of reports.filter((r) => r.truth <= 30)) expect(relativeError(report)).toBeLessThan(0.1);
  });

  test('waits between stages do not count toward a pace', () => {
    const model = new EtaModel();
    model.update(0, work(0, 0));
    model.update(1000, work(1, 0));
    // 60 s of loading before the first iterations report.
    model.update(61_000, work(40, 0));
    model.update(161_000, work(40, 10));
    for (let iteration = 20; iteration <= 500; iteration += 10) model.update(161_000 + (iteration - 10) * 100, work(40, iteration));
    // 500 iterations left at the 0.1 s each took since; the wait before them is not part of it.
    expect(model.remainingSeconds()).toBeGreaterThan(47.5);
    expect(model.remainingSeconds()).toBeLessThan(52.5);
  });
});

describe('ProgressReporter', () => {
  const spec = { jobId: 'job-1', evaluation: { imagesSha256: 'x', count: 1000 }, evaluateParent: true } as QuantizationJobSpec;

  function reporter(now: () => number) {
    const events: JobProgressEvent[] = [];
    const transport = { publishProgress: async (event: JobProgressEvent) => void events.push(event) } as unknown as WorkerTransport;
    const plan = new JobPlan(spec);
    const progress = new ProgressReporter({ spec, attempt: 1 } as JobDelivery, plan, {
      transport, capabilities: {} as WorkerCapabilities, intervalMs: 0, onPublishFailed: () => undefined, now,
    });
    return { events, plan, progress };
  }

  test('the percent is the share of the time spent, never goes back, and is 100 only when the job finished', async () => {
    let now = 0;
    const { events, plan, progress } = reporter(() => now);
    progress.report({ stage: 'fetch' });
    for (let site = 0; site <= 40; site++) {
      now += 1000;
      plan.engineReported({ stage: 'calibrate', progress: 0, work: work(site, 0) });
      progress.report({ stage: 'calibrate' });
    }
    // Iterations three times slower than estimated: the ETA grows, the percent waits.
    for (let iteration = 10; iteration <= 1000; iteration += 10) {
      now += 3000;
      plan.engineReported({ stage: 'reconstruct', progress: 0, work: work(40, iteration) });
      progress.report({ stage: 'reconstruct', iteration });
    }
    plan.engineFinished();
    for (const stage of ['evaluate', 'evaluate-parent'] as const) {
      for (let images = 0; images <= 1000; images += 100) {
        now += 100;
        plan.evaluated(stage, images, 1000);
        progress.report({ stage });
      }
    }
    plan.finish();
    progress.report({ stage: 'finished' });
    await progress.flushed();
    expect(events.at(-2)?.progress).toBeLessThan(100);
    const figures = events.map((e) => e.progress);
    expect(figures.every((p, i) => i === 0 || p >= figures[i - 1])).toBe(true);
    expect(events.at(-1)).toMatchObject({ progress: 100, etaSeconds: 0 });
    // Halfway through the reconstruction, 190 s of the job's 342 are spent.
    const halfway = events.find((e) => e.iteration === 500);
    expect(halfway?.progress).toBeGreaterThan(50);
    expect(halfway?.progress).toBeLessThan(60);
  });
});
