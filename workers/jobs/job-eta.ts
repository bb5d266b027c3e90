/**
 * A job's time left from the live pace of each stage, not one extrapolation of the whole job:
 * the current stage's remaining units at the pace that stage has shown, plus every stage still
 * to come at its first-run estimate (StageWork.unitSeconds) scaled by the pace of the latest
 * stage measured. A stage's estimate is replaced by its own pace as soon as it runs.
 */
import type { StageWork } from '../engine/work';

/**
 * How much the scale a stage began with weighs against its own measurements, in seconds of
 * them: a stage's first units (a site larger than the others, a block's setup) say little.
 */
const PRIOR_WEIGHT_SECONDS = 2;

/**
 * A stage's pace is that of about its last half minute: long enough to span a block's setup
 * and Fisher snapshots, short enough to follow a machine that gets busier or freer.
 */
const PACE_MEMORY_SECONDS = 30;

/** Measured seconds of one stage against the estimated seconds of the units done in them, the older ones fading. */
interface Pace {
  seconds: number;
  estimated: number;
  /** All of the stage's measured seconds, none fading: how far its own pace is to be trusted. */
  measured: number;
  /** The scale when the stage began: what its own pace is pulled toward while it has shown little. */
  prior: number | undefined;
}

/** Seconds a job still needs, from its stages as they are reported over time. */
export class EtaModel {
  private work: readonly StageWork[] = [];
  private lastAt = 0;
  private readonly paces = new Map<string, Pace>();
  /** Actual over estimated seconds of the stage measured last: the scale of the stages to come. */
  private scale: number | undefined;

  /**
   * Records the job's stages at `now` (ms). The time since the previous record counts toward a
   * stage's pace only when that stage alone advanced in it and had already begun, so waits
   * between stages and a stage's setup (loading a model, storing a file) never skew a pace.
   */
  update(now: number, work: readonly StageWork[]): void {
    const before = new Map(this.work.map((w) => [w.stage, w.done]));
    const advanced = work.filter((w) => w.done > (before.get(w.stage) ?? 0));
    const [stage] = advanced;
    const previously = advanced.length === 1 ? before.get(stage.stage) ?? 0 : 0;
    if (previously > 0) {
      const pace = this.paces.get(stage.stage) ?? { seconds: 0, estimated: 0, measured: 0, prior: this.scale };
      const seconds = (now - this.lastAt) / 1000;
      const fade = Math.exp(-seconds / PACE_MEMORY_SECONDS);
      pace.seconds = pace.seconds * fade + seconds;
      pace.estimated = pace.estimated * fade + (stage.done - previously) * stage.unitSeconds;
      pace.measured += seconds;
      this.paces.set(stage.stage, pace);
      this.scale = this.scaleOf(stage.stage);
    }
    this.work = work;
    this.lastAt = now;
  }

  /** Seconds left, or undefined until some stage has shown its pace. */
  remainingSeconds(): number | undefined {
    if (this.scale === undefined) return undefined;
    return this.work.reduce((sum, w) => sum + Math.max(0, w.total - w.done) * w.unitSeconds * (this.scaleOf(w.stage) ?? (this.scale as number)), 0);
  }

  /** A stage's own scale, pulled toward the one it began with while it has shown little. */
  private scaleOf(stage: string): number | undefined {
    const pace = this.paces.get(stage);
    if (!pace || pace.estimated <= 0) return undefined;
    const own = pace.seconds / pace.estimated;
    if (pace.prior === undefined) return own;
    const trust = pace.measured / (pace.measured + PRIOR_WEIGHT_SECONDS);
    return trust * own + (1 - trust) * pace.prior;
  }
}
