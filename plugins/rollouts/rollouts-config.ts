import { ConfigError, integer, type Env } from '../../workers/common/env';

/** The plugin's settings, from ROLLOUT_* environment variables (documented in the README). */
export interface RolloutsConfig {
  /** How often the controller judges each live rollout. */
  intervalMs: number;
  /** How long a replica's claim on a rollout lasts without renewal (renewed each interval). */
  leaseMs: number;
}

export function loadRolloutsConfig(env: Env = process.env): RolloutsConfig {
  const intervalMs = integer(env, 'ROLLOUT_INTERVAL_MS', 10_000, 50, 3_600_000);
  const leaseMs = integer(env, 'ROLLOUT_LEASE_MS', Math.max(30_000, 3 * intervalMs), 100, 86_400_000);
  if (leaseMs <= intervalMs) throw new ConfigError(`ROLLOUT_LEASE_MS (${leaseMs}) must exceed ROLLOUT_INTERVAL_MS (${intervalMs}), or the lease lapses between passes`);
  return { intervalMs, leaseMs };
}
