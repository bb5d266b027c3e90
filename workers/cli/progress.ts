import { SingleBar, Presets } from 'cli-progress';
import { isTerminal } from './context';

/** Progress of a multi-stage task: one bar per stage, on a terminal only. */
export interface StageProgress {
  /** `detail`: a short live text after the bar (block, iteration, loss). */
  update(stage: string, done: number, total: number, detail?: string): void;
  stop(): void;
}

const silent: StageProgress = { update: () => undefined, stop: () => undefined };

/** A progress bar on `stream` when it is a terminal and `enabled`, else a no-op. */
export function stageProgress(stream: NodeJS.WritableStream, enabled: boolean): StageProgress {
  if (!enabled || !isTerminal(stream)) return silent;
  let bar: SingleBar | undefined;
  let current = '';
  return {
    update(stage, done, total, detail = '') {
      if (stage !== current || !bar) {
        bar?.stop();
        current = stage;
        bar = new SingleBar(
          { stream, format: `${stage.padEnd(14)} [{bar}] {percentage}% | {value}/{total} | {duration_formatted} | ETA {eta_formatted} {detail}`, hideCursor: true },
          Presets.shades_classic,
        );
        bar.start(total, done, { detail });
        return;
      }
      bar.setTotal(total);
      bar.update(done, { detail });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
