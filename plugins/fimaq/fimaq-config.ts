import { boolean, integer, text, type Env } from '../../workers/common/env';

/** The plugin's own settings, from FIMAQ_* environment variables (documented in the README). */
export interface FimaqConfig {
  /** Prefix of the NATS streams, consumers and buckets; workers must use the same. */
  natsNamespace: string;
  /** JetStream copies of the job streams and buckets when this side creates them. */
  natsReplicas: number;
  /** Worker processes the gateway starts itself when NATS_URL is unset. */
  embeddedWorkers: number;
  /** Whether a new variant starts as a shadow of its parent when the request does not say. */
  shadowByDefault: boolean;
  /** Share of requests mirrored to a new shadow, 0..100. */
  shadowMirrorPercent: number;
  /** How often the outbox is polled (mutations also trigger a pass at once). */
  dispatchIntervalMs: number;
}

export function loadFimaqConfig(env: Env = process.env): FimaqConfig {
  return {
    natsNamespace: text(env, 'FIMAQ_NATS_NAMESPACE', 'fimaq'),
    natsReplicas: integer(env, 'FIMAQ_NATS_REPLICAS', 1, 1, 5),
    embeddedWorkers: integer(env, 'FIMAQ_EMBEDDED_WORKERS', 1, 1, 64),
    shadowByDefault: boolean(env, 'FIMAQ_SHADOW_BY_DEFAULT', true),
    shadowMirrorPercent: integer(env, 'FIMAQ_SHADOW_MIRROR_PERCENT', 100, 0, 100),
    dispatchIntervalMs: integer(env, 'FIMAQ_DISPATCH_INTERVAL_MS', 1000, 10, 600_000),
  };
}
