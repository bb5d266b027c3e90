import { notFound } from '../errors';
import type { ChangeFeed } from '../events/change-feed';
import type { EventBus } from '../events/event-bus';
import type { RegistryService } from '../registry/registry-service';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import { defaultPolicy, type TrafficPolicy } from './traffic-policy';
import type { TrafficPolicyRepository } from './traffic-policy-repository';

/**
 * What a request needs to know about a model, read once per request as one immutable object:
 * replacing the object is how policy changes apply atomically while earlier requests finish
 * with the state they started with.
 */
export interface ModelServingState {
  model: ModelRecord;
  variants: readonly VariantRecord[];
  policy: TrafficPolicy;
  policyVersion: number;
  policyUpdatedBy: string | null;
  policyUpdatedAt: Date | null;
}

/**
 * Other replicas announce their policy and variant changes on the change feed, which drops the
 * entry at once; entries are also re-read this often, for a notification lost on the way.
 */
const REFRESH_MS = 5000;

/** Change-feed topic of a model's serving state (policy, variants); the key is the model id. */
export const SERVING_STATE_TOPIC = 'serving.model';

interface Entry {
  state: Promise<ModelServingState>;
  loadedAt: number;
}

/** The variant a version path names, by tag or else by id; NOT_FOUND when there is none. */
export function variantByVersion(state: ModelServingState, version: string): VariantRecord {
  const variant = state.variants.find((v) => v.tag === version) ?? state.variants.find((v) => v.id === version);
  if (!variant) throw notFound(`model ${state.model.name} has no variant "${version}"`);
  return variant;
}

/** The variant the policy routes to first, else the first ready one: what unversioned metadata and raw requests describe. */
export function defaultVariant(state: ModelServingState): VariantRecord | undefined {
  const routed = state.policy.routes.find((r) => r.weight > 0);
  return state.variants.find((v) => v.id === routed?.variantId) ?? state.variants.find((v) => v.status === 'ready');
}

/** Ready variants the policy routes to or mirrors to: those whose work a gallery or a warm-up should do first. */
export function liveVariants(state: ModelServingState): VariantRecord[] {
  const live = new Set([...state.policy.routes.map((r) => r.variantId), ...state.policy.shadows.map((s) => s.variantId)]);
  return state.variants.filter((v) => live.has(v.id) && v.status === 'ready');
}

/**
 * The data plane's cache of models, their variants and their policies, by model name. Policy
 * writes never start from it: TrafficPolicies reads past it and invalidates the entry it wrote.
 */
export class ServingCatalog {
  private readonly entries = new Map<string, Entry>();
  private readonly namesById = new Map<string, string>();
  private readonly unsubscribe: Array<() => void>;

  constructor(
    private readonly registry: RegistryService,
    private readonly policies: TrafficPolicyRepository,
    events: EventBus,
    private readonly changes: ChangeFeed,
  ) {
    this.unsubscribe = [
      events.on('model.registered', ({ model }) => this.changed(model.id)),
      events.on('model.updated', ({ model }) => this.changed(model.id)),
      events.on('variant.added', ({ model }) => this.changed(model.id)),
      events.on('variant.status', ({ variant }) => this.changed(variant.modelId)),
      changes.subscribe(SERVING_STATE_TOPIC, (modelId) => this.invalidate(modelId)),
    ];
  }

  /** The model's current state; NOT_FOUND for an unknown model. */
  get(modelName: string): Promise<ModelServingState> {
    const entry = this.entries.get(modelName);
    if (entry && Date.now() - entry.loadedAt < REFRESH_MS) return entry.state;
    const state = this.read(modelName);
    this.entries.set(modelName, { state, loadedAt: Date.now() });
    state.catch(() => this.entries.delete(modelName));
    return state;
  }

  /** The states the cache holds (the models served lately), for figures read at scrape time. */
  async cached(): Promise<ModelServingState[]> {
    const settled = await Promise.allSettled([...this.entries.values()].map((entry) => entry.state));
    return settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  }

  close(): void {
    for (const off of this.unsubscribe) off();
  }

  /** The model's state as stored right now, past the cache: where a read-modify-write starts. */
  async read(modelName: string): Promise<ModelServingState> {
    const model = await this.registry.getModel(modelName);
    this.namesById.set(model.id, model.name);
    const [variants, stored] = await Promise.all([this.registry.listVariants(model.id), this.policies.find(model.id)]);
    return {
      model,
      variants,
      policy: stored?.policy ?? defaultPolicy(variants),
      policyVersion: stored?.version ?? 0,
      policyUpdatedBy: stored?.updatedBy ?? null,
      policyUpdatedAt: stored?.updatedAt ?? null,
    };
  }

  /** This replica changed the model's stored state: drop its entry here and on the other replicas. */
  changed(modelId: string): void {
    this.invalidate(modelId);
    this.changes.publish(SERVING_STATE_TOPIC, modelId);
  }

  /** Drops the model's entry, so the next request reads what is stored. */
  private invalidate(modelId: string): void {
    const name = this.namesById.get(modelId);
    if (name !== undefined) this.entries.delete(name);
  }
}
