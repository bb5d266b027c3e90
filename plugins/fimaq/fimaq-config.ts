import { ConfigError } from '../../gateway/config/config';

/** The plugin's own settings, from FIMAQ_* environment variables (documented in the README). */
export interface FimaqConfig {
  /** Prefix of the NATS streams, consumers and buckets; workers must use the same. */
  natsNamespace: string;
  /** Worker processes the gateway starts itself when NATS_URL is unset. */
  embeddedWorkers: number;
  /** Whether a new variant starts as a shadow of its parent when the request does not say. */
  shadowByDefault: boolean;
  /** Share of requests mirrored to a new shadow, 0..100. */
  shadowMirrorPercent: number;
  /** How often the outbox is polled (mutations also trigger a pass at once). */
  dispatchIntervalMs: number;
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be an integer in ${min}..${max}, got "${raw}"`);
  return value;
}

export function loadFimaqConfig(env: Env = process.env): FimaqConfig {
  const shadow = env.FIMAQ_SHADOW_BY_DEFAULT?.trim().toLowerCase();
  if (shadow && !['true', 'false', '1', '0'].includes(shadow)) throw new ConfigError(`FIMAQ_SHADOW_BY_DEFAULT must be true or false, got "${shadow}"`);
  return {
    natsNamespace: env.FIMAQ_NATS_NAMESPACE?.trim() || 'fimaq',
    embeddedWorkers: integer(env, 'FIMAQ_EMBEDDED_WORKERS', 1, 1, 64),
    shadowByDefault: shadow ? shadow === 'true' || shadow === '1' : true,
    shadowMirrorPercent: integer(env, 'FIMAQ_SHADOW_MIRROR_PERCENT', 100, 0, 100),
    dispatchIntervalMs: integer(env, 'FIMAQ_DISPATCH_INTERVAL_MS', 1000, 10, 600_000),
  };
}
