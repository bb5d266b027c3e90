/**
 * Readers of environment variables, shared by the gateway's, the FIMA-Q plugin's and the
 * worker's configuration so a value means the same thing wherever it is read. Each reader
 * trims the value, treats empty as unset (the fallback), and throws a ConfigError naming the
 * variable when the value is malformed.
 */

export class ConfigError extends Error {}

export type Env = Readonly<Record<string, string | undefined>>;

/** The value trimmed, or undefined when unset or blank. */
function raw(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

export function text(env: Env, name: string, fallback: string): string;
export function text(env: Env, name: string): string | undefined;
export function text(env: Env, name: string, fallback?: string): string | undefined {
  return raw(env, name) ?? fallback;
}

export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
    throw new ConfigError(`${name} must be an integer in ${min}..${max}, got "${value}"`);
  }
  return parsed;
}

/** A byte count: a plain integer or one with a unit (b, k/kb, m/mb, g/gb; powers of 1024). */
export function byteSize(env: Env, name: string, fallback: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const match = /^(\d+)\s*(b|kb|k|mb|m|gb|g)?$/i.exec(value);
  if (!match) throw new ConfigError(`${name} must be a size such as 200mb or 1048576, got "${value}"`);
  const unit = (match[2] ?? 'b').toLowerCase()[0];
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Number(match[1]) * factor;
}

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];

/** true/false, 1/0, yes/no or on/off, in any case. */
export function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const word = value.toLowerCase();
  if (TRUE_WORDS.includes(word)) return true;
  if (FALSE_WORDS.includes(word)) return false;
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
}

/** A URL with one of the given protocols (e.g. `nats:`), or undefined when unset. */
export function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const value = raw(env, name);
  if (value === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL: "${value}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return value;
}

/** Comma-separated items, each trimmed, empty ones dropped. */
export function list(env: Env, name: string, fallback: string[]): string[] {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}
