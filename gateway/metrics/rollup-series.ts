import { sql, type RawBuilder } from 'kysely';
import type { DatabaseHandle } from '../db/database';
import { COMPUTE_BUCKET_COLUMNS, LATENCY_BUCKET_COLUMNS, ROLLUP_SCALAR_COLUMNS, countsOfColumns, type RollupCounts } from '../serving/metric-rollups';

/** One variant's rollup totals over one time step, summed over minutes and gateway instances. */
export interface SeriesPoint {
  variantId: string;
  /** Index of the step since `from`: it covers [from + index·step, from + (index + 1)·step). */
  index: number;
  counts: RollupCounts;
}


/** The step index of a rollup minute, computed by the database so only one row per step comes back. */
function stepIndex(dialect: DatabaseHandle['dialect'], fromSeconds: number, stepSeconds: number): RawBuilder<number> {
  return dialect === 'postgres'
    ? // extract() answers numeric, slow to divide; whole seconds as bigint divide fast and floor for non-negative values.
      sql<number>`((extract(epoch from minute)::bigint - ${fromSeconds}::bigint) / ${stepSeconds}::bigint)::integer`
    : // Minutes are ISO text on SQLite, and better-sqlite3 binds numbers as reals: the cast of a non-negative quotient floors.
      sql<number>`cast((strftime('%s', minute) - ${fromSeconds}) / ${stepSeconds} as integer)`;
}

/**
 * Rollup totals of a model's variants per time step in [from, to), summed in SQL (over minutes,
 * gateway instances and every histogram bucket), so the answer has one row per variant and step
 * whatever the number of rollup rows, in no particular order (each point names its step). Reads
 * the (model_id, minute) index.
 */
export async function rollupSeries(database: DatabaseHandle, modelId: string, from: Date, to: Date, stepSeconds: number): Promise<SeriesPoint[]> {
  const index = stepIndex(database.dialect, Math.floor(from.getTime() / 1000), stepSeconds);
  const sums = [...ROLLUP_SCALAR_COLUMNS.map(([column]) => column), ...LATENCY_BUCKET_COLUMNS, ...COMPUTE_BUCKET_COLUMNS].map((column) =>
    sql`sum(${sql.ref(column)})`.as(column),
  );
  const rows = await database.db
    .selectFrom('serving_rollups')
    .select((eb) => [eb.ref('variant_id').as('variant_id'), index.as('step_index'), ...sums])
    .where('model_id', '=', modelId)
    .where('minute', '>=', from.toISOString())
    .where('minute', '<', to.toISOString())
    .groupBy(['variant_id', 'step_index'])
    .execute();
  return rows.map((row) => {
    return { variantId: String(row.variant_id), index: Number(row.step_index), counts: countsOfColumns(row as unknown as Record<string, unknown>) };
  });
}
