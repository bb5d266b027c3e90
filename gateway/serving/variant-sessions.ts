import type { Logger } from 'pino';
import type { ArtifactStore } from '../artifacts/artifact-store';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import type { BatchingOptions } from './batching';
import { VariantRunner } from './variant-runner';
import { WorkerSession, type SessionOptions } from './worker-session';

/** After a failed load, requests fail fast for this long before a new attempt. */
const RETRY_LOAD_AFTER_MS = 5000;

export interface VariantSessionsOptions {
  artifacts: ArtifactStore;
  logger: Logger;
  session: SessionOptions;
  queueLimit: number;
  defaultBatching: BatchingOptions;
  onRun: (model: ModelRecord, variant: VariantRecord, rows: number, requests: number, computeMs: number) => void;
}

interface Slot {
  modelName: string;
  variantTag: string;
  runner: Promise<VariantRunner>;
  loaded?: VariantRunner;
  failedAt?: number;
}

/** A failed load is retried after a pause; a worker that died (crash, out of memory) is replaced at once. */
function usable(slot: Slot): boolean {
  if (slot.failedAt !== undefined) return Date.now() - slot.failedAt < RETRY_LOAD_AFTER_MS;
  return slot.loaded?.healthy ?? true;
}

/** Loads each variant's session on first use (or when it becomes ready) and unloads it when retired. */
export class VariantSessions {
  private readonly slots = new Map<string, Slot>();

  constructor(private readonly options: VariantSessionsOptions) {}

  /** The variant's runner, loading its session if needed; rejects with a 500-class error when it cannot load. */
  runner(model: ModelRecord, variant: VariantRecord): Promise<VariantRunner> {
    const slot = this.slots.get(variant.id);
    if (slot && usable(slot)) return slot.runner;
    const fresh: Slot = { modelName: model.name, variantTag: variant.tag, runner: this.load(model, variant) };
    fresh.runner.then(
      (runner) => (fresh.loaded = runner),
      () => (fresh.failedAt = Date.now()),
    );
    this.slots.set(variant.id, fresh);
    return fresh.runner;
  }

  /** True while a recent load failure stands: routing by policy steers around such variants. */
  hasFailed(variantId: string): boolean {
    const slot = this.slots.get(variantId);
    return slot !== undefined && slot.failedAt !== undefined && usable(slot);
  }

  /** Requests waiting per loaded variant, for the queue-depth gauge. */
  queueDepths(): Array<{ model: string; variant: string; depth: number }> {
    return [...this.slots.values()]
      .filter((slot) => slot.loaded)
      .map((slot) => ({ model: slot.modelName, variant: slot.variantTag, depth: (slot.loaded as VariantRunner).depth }));
  }

  warm(model: ModelRecord, variant: VariantRecord): void {
    this.runner(model, variant).catch((error: unknown) => this.options.logger.warn({ err: error, variant: variant.id }, 'variant failed to load'));
  }

  /** Finishes what the variant has admitted, then frees its session. */
  async unload(variantId: string): Promise<void> {
    const slot = this.slots.get(variantId);
    if (!slot) return;
    this.slots.delete(variantId);
    const runner = await slot.runner.catch(() => undefined);
    await runner?.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.slots.keys()].map((id) => this.unload(id)));
  }

  private async load(model: ModelRecord, variant: VariantRecord): Promise<VariantRunner> {
    const label = `variant ${model.name}/${variant.tag}`;
    const started = Date.now();
    const modelPath = await this.options.artifacts.localPath(variant.artifactSha256);
    const session = await WorkerSession.open(modelPath, this.options.session, label);
    const dynamicFirst = (shape: number[]) => shape[0] === -1;
    const runner = new VariantRunner(session, {
      label,
      queueLimit: this.options.queueLimit,
      batching: this.options.defaultBatching,
      batchable: variant.signature.inputs.every((t) => dynamicFirst(t.shape)) && variant.signature.outputs.every((t) => dynamicFirst(t.shape)),
      onRun: (rows, requests, computeMs) => this.options.onRun(model, variant, rows, requests, computeMs),
    });
    this.options.logger.info({ model: model.name, variant: variant.tag, ms: Date.now() - started }, 'variant session loaded');
    return runner;
  }
}
