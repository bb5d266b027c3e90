import { badInput } from '../errors';
import type { VariantRecord } from '../registry/registry-types';
import type { BatchingOptions } from './batching';

export interface WeightedRoute {
  variantId: string;
  /** Relative share of primary traffic; any non-negative scale. */
  weight: number;
}

export interface ShadowRoute {
  variantId: string;
  /** Share of requests mirrored to this variant, 0..100. */
  mirrorPercent: number;
}

/** How a model's requests without a version path are served. */
export interface TrafficPolicy {
  routes: WeightedRoute[];
  shadows: ShadowRoute[];
  /** Requests carrying this header with the same value always reach the same variant; null: random. */
  stickyHeader: string | null;
  /** Null: the gateway-wide default from the configuration. */
  batching: BatchingOptions | null;
}

export const DEFAULT_STICKY_HEADER = 'x-routing-key';
const HEADER_NAME = /^[a-z0-9-]{1,64}$/;
export const MAX_BATCH_SIZE = 1024;
export const MAX_QUEUE_DELAY_MS = 1000;

/** The policy of a model nobody configured: everything to its original (root) ready variant. */
export function defaultPolicy(variants: readonly VariantRecord[]): TrafficPolicy {
  const ready = variants.filter((v) => v.status === 'ready');
  const root = ready.find((v) => v.parentVariantId === null) ?? ready[0];
  return { routes: root ? [{ variantId: root.id, weight: 1 }] : [], shadows: [], stickyHeader: DEFAULT_STICKY_HEADER, batching: null };
}

/** Refuses a policy that cannot route: unknown or unready variants, no positive weight, bad numbers. */
export function validatePolicy(policy: TrafficPolicy, variants: readonly VariantRecord[], modelName: string): void {
  const byId = new Map(variants.map((v) => [v.id, v]));
  const checkVariant = (id: string, role: string) => {
    const variant = byId.get(id);
    if (!variant) throw badInput(`${role} variant ${id} is not a variant of model ${modelName}`);
    if (variant.status !== 'ready') throw badInput(`${role} variant ${variant.tag} is ${variant.status}; only ready variants can receive traffic`);
  };
  if (policy.routes.length === 0) throw badInput('a traffic policy needs at least one route');
  for (const route of policy.routes) {
    checkVariant(route.variantId, 'routed');
    if (!Number.isFinite(route.weight) || route.weight < 0) throw badInput(`weights must be finite and non-negative; got ${route.weight}`);
  }
  if (!policy.routes.some((r) => r.weight > 0)) throw badInput('at least one route needs a positive weight');
  if (new Set(policy.routes.map((r) => r.variantId)).size !== policy.routes.length) throw badInput('each variant may appear once in routes');
  for (const shadow of policy.shadows) {
    checkVariant(shadow.variantId, 'shadow');
    if (!(shadow.mirrorPercent >= 0 && shadow.mirrorPercent <= 100)) throw badInput(`mirrorPercent must be in 0..100; got ${shadow.mirrorPercent}`);
  }
  if (new Set(policy.shadows.map((s) => s.variantId)).size !== policy.shadows.length) throw badInput('each variant may appear once in shadows');
  if (policy.stickyHeader !== null && !HEADER_NAME.test(policy.stickyHeader)) {
    throw badInput(`stickyHeader must be a lowercase header name (letters, digits, '-'); got "${policy.stickyHeader}"`);
  }
  const batching = policy.batching;
  if (batching) {
    if (!Number.isInteger(batching.maxBatchSize) || batching.maxBatchSize < 1 || batching.maxBatchSize > MAX_BATCH_SIZE) {
      throw badInput(`maxBatchSize must be an integer in 1..${MAX_BATCH_SIZE}`);
    }
    if (!(batching.maxQueueDelayMs >= 0 && batching.maxQueueDelayMs <= MAX_QUEUE_DELAY_MS)) throw badInput(`maxQueueDelayMs must be in 0..${MAX_QUEUE_DELAY_MS}`);
  }
}

/** FNV-1a of the text, as a fraction in [0, 1): a stable coin for sticky routing. */
export function stableFraction(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // A final avalanche step: FNV's low bits move little for similar short keys.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return (hash >>> 0) / 2 ** 32;
}

export interface RouteChoice {
  primaryId: string;
  shadowIds: string[];
}

/**
 * Picks the variant that answers and those that get a mirrored copy. Variants that cannot serve
 * right now are skipped and the others' weights renormalized; undefined when none is left.
 */
export function chooseRoute(
  policy: TrafficPolicy,
  servable: (variantId: string) => boolean,
  routingKey: string | undefined,
  random: () => number = Math.random,
): RouteChoice | undefined {
  const routes = policy.routes.filter((r) => r.weight > 0 && servable(r.variantId));
  if (routes.length === 0) return undefined;
  const total = routes.reduce((sum, r) => sum + r.weight, 0);
  let point = (routingKey === undefined ? random() : stableFraction(routingKey)) * total;
  let primaryId = routes[routes.length - 1].variantId;
  for (const route of routes) {
    if (point < route.weight) {
      primaryId = route.variantId;
      break;
    }
    point -= route.weight;
  }
  const shadowIds = policy.shadows
    .filter((s) => s.variantId !== primaryId && servable(s.variantId))
    .filter((s) => {
      // Salted by variant so the mirrored subsets of two shadows are independent.
      const coin = routingKey === undefined ? random() : stableFraction(`${s.variantId}\u0000${routingKey}`);
      return coin * 100 < s.mirrorPercent;
    })
    .map((s) => s.variantId);
  return { primaryId, shadowIds };
}
