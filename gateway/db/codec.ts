/**
 * Dialect normalization in one place: SQLite hands back timestamps and JSON as strings and
 * big integers as numbers, PostgreSQL hands back Dates, and bigint as strings.
 */
export function toDate(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

export function toOptionalDate(value: Date | string | null): Date | null {
  return value === null ? null : toDate(value);
}

/** ISO text binds on both drivers (better-sqlite3 refuses Date objects). */
export function nowIso(): string {
  return new Date().toISOString();
}

export function toJson(value: unknown): string {
  return JSON.stringify(value ?? null);
}

export function fromJson<T>(text: string | null): T {
  return (text === null ? null : JSON.parse(text)) as T;
}

export function toInteger(value: number | string): number {
  return typeof value === 'number' ? value : Number(value);
}
