import type { Logger } from 'pino';
import type { ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import type { BatchingOptions } from './batching';
import { VariantRunner } from './variant-runner';
import { WorkerSession, type SessionOptions } from './worker-session';

/** After a failed load, requests fail fast for this long before a new attempt. */
const RETRY_LOAD_AFTER_MS = 5000;

/**
 * Which traffic a session serves. Shadow traffic gets sessions of its own, niced and with a
 * shorter queue, so mirrored work never waits in front of, or takes the cores from, answers.
 */
export type Lane = 'primary' | 'shadow';

export interface VariantSessionsOptions {
  artifacts: ArtifactStore;
  logger: Logger;
  session: Omit<SessionOptions, 'nice'>;
  /** Niceness of shadow sessions' threads (0..19). */
  shadowNice: number;
  /** Queue places per primary session; shadow sessions get half. */
  queueLimit: number;
  defaultBatching: BatchingOptions;
  onRun: (model: ModelRecord, variant: VariantRecord, rows: number, requests: number, computeMs: number) => void;
}

interface Slot {
  modelName: string;
  variantId: string;
  variantTag: string;
  lane: Lane;
  runner: Promise<VariantRunner>;
  loaded?: VariantRunner;
  failedAt?: number;
}

/** A failed load is retried after a pause; a worker that died (crash, out of memory) is replaced at once. */
function usable(slot: Slot): boolean {
  if (slot.failedAt !== undefined) return Date.now() - slot.failedAt < RETRY_LOAD_AFTER_MS;
  return slot.loaded?.healthy ?? true;
}

const keyOf = (variantId: string, lane: Lane) => `${variantId}/${lane}`;

/** Loads each variant's session per lane on first use (or when it becomes ready) and unloads it when retired. */
export class VariantSessions {
  private readonly slots = new Map<string, Slot>();

  constructor(private readonly options: VariantSessionsOptions) {}

  /** The variant's runner for a lane, loading its session if needed; rejects with a 500-class error when it cannot load. */
  runner(model: ModelRecord, variant: VariantRecord, lane: Lane = 'primary'): Promise<VariantRunner> {
    const key = keyOf(variant.id, lane);
    const slot = this.slots.get(key);
    if (slot && usable(slot)) return slot.runner;
    const fresh: Slot = { modelName: model.name, variantId: variant.id, variantTag: variant.tag, lane, runner: this.load(model, variant, lane) };
    fresh.runner.then(
      (runner) => (fresh.loaded = runner),
      () => (fresh.failedAt = Date.now()),
    );
    this.slots.set(key, fresh);
    return fresh.runner;
  }

  /** True while a recent load failure stands: routing by policy steers around such variants. */
  hasFailed(variantId: string): boolean {
    const slot = this.slots.get(keyOf(variantId, 'primary'));
    return slot !== undefined && slot.failedAt !== undefined && usable(slot);
  }

  /** Requests waiting per loaded session, for the queue-depth gauge. */
  queueDepths(): Array<{ model: string; variant: string; lane: Lane; depth: number }> {
    return [...this.slots.values()]
      .filter((slot) => slot.loaded)
      .map((slot) => ({ model: slot.modelName, variant: slot.variantTag, lane: slot.lane, depth: (slot.loaded as VariantRunner).depth }));
  }

  warm(model: ModelRecord, variant: VariantRecord): void {
    this.runner(model, variant).catch((error: unknown) => this.options.logger.warn({ err: error, variant: variant.id }, 'variant failed to load'));
  }

  /** Finishes what the variant has admitted in every lane, then frees its sessions. */
  async unload(variantId: string): Promise<void> {
    const slots = [...this.slots.entries()].filter(([, slot]) => slot.variantId === variantId);
    for (const [key] of slots) this.slots.delete(key);
    await Promise.all(
      slots.map(async ([, slot]) => {
        const runner = await slot.runner.catch(() => undefined);
        await runner?.close();
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...new Set([...this.slots.values()].map((slot) => slot.variantId))].map((id) => this.unload(id)));
  }

  private async load(model: ModelRecord, variant: VariantRecord, lane: Lane): Promise<VariantRunner> {
    const label = `variant ${model.name}/${variant.tag}${lane === 'shadow' ? ' (shadow)' : ''}`;
    const started = Date.now();
    const modelPath = await this.options.artifacts.localPath(variant.artifactSha256);
    const nice = lane === 'shadow' ? this.options.shadowNice : 0;
    const session = await WorkerSession.open(modelPath, { ...this.options.session, nice }, label);
    const dynamicFirst = (shape: number[]) => shape[0] === -1;
    const runner = new VariantRunner(session, {
      label,
      queueLimit: lane === 'shadow' ? Math.max(1, Math.floor(this.options.queueLimit / 2)) : this.options.queueLimit,
      batching: this.options.defaultBatching,
      batchable: variant.signature.inputs.every((t) => dynamicFirst(t.shape)) && variant.signature.outputs.every((t) => dynamicFirst(t.shape)),
      onRun: (rows, requests, computeMs) => this.options.onRun(model, variant, rows, requests, computeMs),
    });
    this.options.logger.info({ model: model.name, variant: variant.tag, lane, ms: Date.now() - started }, 'variant session loaded');
    return runner;
  }
}
