import { GatewayError, notFound } from '../errors';
import type { VariantRecord } from '../registry/registry-types';
import { variantByVersion, type ModelServingState } from './serving-catalog';
import { chooseRoute } from './traffic-policy';

/** What routing reads of a call: the version path, if any, and its headers (sticky routing). */
export interface RoutedCall {
  /** Variant tag or id from the version path; undefined lets the traffic policy choose. */
  version?: string;
  /** Reads a request header (lowercase name). */
  header: (name: string) => string | undefined;
}

/**
 * The variant a call addresses, and the shadows that get a mirrored copy: the version path names
 * one variant and mirrors nothing; otherwise the model's traffic policy chooses among the variants
 * that can serve now.
 */
export function routeCall(state: ModelServingState, call: RoutedCall, canServe: (variantId: string) => boolean): { variant: VariantRecord; shadowIds: string[] } {
  if (call.version !== undefined) {
    const variant = variantByVersion(state, call.version);
    if (variant.status !== 'ready') throw notFound(`variant ${state.model.name}/${variant.tag} is ${variant.status}, not serving`);
    return { variant, shadowIds: [] };
  }
  const byId = new Map(state.variants.map((v) => [v.id, v]));
  const servable = (id: string) => byId.get(id)?.status === 'ready' && canServe(id);
  const key = state.policy.stickyHeader ? call.header(state.policy.stickyHeader) : undefined;
  const choice = chooseRoute(state.policy, servable, key);
  if (!choice) throw new GatewayError('UNAVAILABLE', `model ${state.model.name} has no ready variant in its traffic policy; set one with setTrafficPolicy`);
  return { variant: byId.get(choice.primaryId) as VariantRecord, shadowIds: choice.shadowIds };
}
