import type { Kysely } from 'kysely';
import { toDate } from '../db/codec';
import type { ComputeBucketColumn, Database, LatencyBucketColumn, ServingRollupsTable } from '../db/schema';

/** Upper bounds (ms) of the latency buckets kept per minute; one overflow bucket follows. */
export const ROLLUP_LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/** The table's bucket columns, in bucket order (migration 0005_compute_histograms). */
export const LATENCY_BUCKET_COLUMNS = Array.from({ length: ROLLUP_LATENCY_BUCKETS_MS.length + 1 }, (_, i) => `latency_bucket_${i}` as LatencyBucketColumn);
export const COMPUTE_BUCKET_COLUMNS = Array.from({ length: ROLLUP_LATENCY_BUCKETS_MS.length + 1 }, (_, i) => `compute_bucket_${i}` as ComputeBucketColumn);

export interface RollupCounts {
  requests: number;
  errors: number;
  shadowRequests: number;
  shadowErrors: number;
  latencyMsSum: number;
  latencyBuckets: number[];
  computeMsSum: number;
  /** Requests per bucket of the onnxruntime run that served them (answered and shadowed). */
  computeBuckets: number[];
  shadowDropped: number;
  compared: number;
  agreed: number;
  klSum: number;
  top1DeltaSum: number;
  /** Retrieval, on a shadow's row: cosine of its embedding and the answering variant's, per compared row. */
  cosineSum: number;
  cosineSqSum: number;
  /** overlap@k and the rank correlation of the two top-k neighbour lists, per row compared with a gallery. */
  overlapSum: number;
  overlapSqSum: number;
  rankCorrelationSum: number;
  rankCorrelationSqSum: number;
  overlapCompared: number;
  /** Rows (classification) or queries (retrieval) with feedback, and those the variant got right (retrieval: a relevant item in its top k). */
  feedback: number;
  correct: number;
  /** Retrieval: average precision@k per query with feedback. */
  averagePrecisionSum: number;
  averagePrecisionSqSum: number;
  /** On a shadow's row: feedback rows it and the request's answering variant both predicted, by who was right. */
  pairedBoth: number;
  pairedPrimaryOnly: number;
  pairedShadowOnly: number;
  pairedNeither: number;
  /** Retrieval, on a shadow's row: its AP@k minus the answering variant's, per paired query. */
  pairedApDeltaSum: number;
  pairedApDeltaSqSum: number;
}

export interface RollupRow extends RollupCounts {
  minute: Date;
  modelId: string;
  variantId: string;
}

type ScalarKey = Exclude<keyof RollupCounts, 'latencyBuckets' | 'computeBuckets'>;

/** Every scalar counter and its column in serving_rollups: the one map that writes, reads and sums use. */
export const ROLLUP_SCALAR_COLUMNS: ReadonlyArray<readonly [column: keyof ServingRollupsTable, key: ScalarKey]> = [
  ['requests', 'requests'], ['errors', 'errors'], ['shadow_requests', 'shadowRequests'], ['shadow_errors', 'shadowErrors'],
  ['shadow_dropped', 'shadowDropped'], ['latency_ms_sum', 'latencyMsSum'], ['compute_ms_sum', 'computeMsSum'],
  ['compared', 'compared'], ['agreed', 'agreed'], ['kl_sum', 'klSum'], ['top1_delta_sum', 'top1DeltaSum'],
  ['cosine_sum', 'cosineSum'], ['cosine_sq_sum', 'cosineSqSum'], ['overlap_sum', 'overlapSum'], ['overlap_sq_sum', 'overlapSqSum'],
  ['rank_correlation_sum', 'rankCorrelationSum'], ['rank_correlation_sq_sum', 'rankCorrelationSqSum'], ['overlap_compared', 'overlapCompared'],
  ['feedback', 'feedback'], ['correct', 'correct'], ['average_precision_sum', 'averagePrecisionSum'], ['average_precision_sq_sum', 'averagePrecisionSqSum'],
  ['paired_both', 'pairedBoth'], ['paired_primary_only', 'pairedPrimaryOnly'], ['paired_shadow_only', 'pairedShadowOnly'], ['paired_neither', 'pairedNeither'],
  ['paired_ap_delta_sum', 'pairedApDeltaSum'], ['paired_ap_delta_sq_sum', 'pairedApDeltaSqSum'],
];

export function emptyCounts(): RollupCounts {
  const scalars = Object.fromEntries(ROLLUP_SCALAR_COLUMNS.map(([, key]) => [key, 0])) as Record<ScalarKey, number>;
  return { ...scalars, latencyBuckets: new Array(ROLLUP_LATENCY_BUCKETS_MS.length + 1).fill(0), computeBuckets: new Array(ROLLUP_LATENCY_BUCKETS_MS.length + 1).fill(0) };
}

/** Counts from a row of summed or stored columns (numbers, or numeric strings from PostgreSQL sums); missing columns read as 0. */
export function countsOfColumns(row: Readonly<Record<string, unknown>>): RollupCounts {
  const counts = emptyCounts();
  for (const [column, key] of ROLLUP_SCALAR_COLUMNS) counts[key] = Number(row[column] ?? 0);
  counts.latencyBuckets = LATENCY_BUCKET_COLUMNS.map((column) => Number(row[column] ?? 0));
  counts.computeBuckets = COMPUTE_BUCKET_COLUMNS.map((column) => Number(row[column] ?? 0));
  return counts;
}

/** A rollup row's figures, without its key. */
type RollupColumns = Omit<ServingRollupsTable, 'minute' | 'model_id' | 'variant_id' | 'instance_id'>;

/** The columns of a set of counts, to write. */
export function columnsOfCounts(counts: RollupCounts): RollupColumns {
  const scalars = Object.fromEntries(ROLLUP_SCALAR_COLUMNS.map(([column, key]) => [column, counts[key]]));
  return { ...scalars, ...bucketValues(LATENCY_BUCKET_COLUMNS, counts.latencyBuckets), ...bucketValues(COMPUTE_BUCKET_COLUMNS, counts.computeBuckets) } as RollupColumns;
}

export function bucketOf(ms: number): number {
  const index = ROLLUP_LATENCY_BUCKETS_MS.findIndex((bound) => ms <= bound);
  return index === -1 ? ROLLUP_LATENCY_BUCKETS_MS.length : index;
}

/** The latency below which a share q of requests fell, as the upper bound of its bucket. */
export function latencyQuantile(buckets: readonly number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= q * total) return ROLLUP_LATENCY_BUCKETS_MS[i] ?? Infinity;
  }
  return Infinity;
}

const COUNTERS = Object.keys(emptyCounts()) as Array<keyof RollupCounts>;

/**
 * Adds (or, with sign −1, subtracts) one set of counts to another: every counter and every
 * histogram bucket. Counts read back from JSON written before a counter existed lack it; they add nothing.
 */
export function addCounts(into: RollupCounts, from: RollupCounts, sign: 1 | -1 = 1): RollupCounts {
  for (const key of COUNTERS) {
    const value = from[key] as number | number[] | undefined;
    if (value === undefined) continue;
    if (Array.isArray(value)) value.forEach((n, i) => ((into[key] as number[])[i] += sign * n));
    else (into[key] as number) += sign * value;
  }
  return into;
}

/** A histogram as the values of its bucket columns. */
function bucketValues<C extends LatencyBucketColumn | ComputeBucketColumn>(columns: readonly C[], counts: readonly number[]): Pick<ServingRollupsTable, C> {
  return Object.fromEntries(columns.map((column, i) => [column, counts[i]])) as Pick<ServingRollupsTable, C>;
}

const minuteOf = (time: number) => new Date(Math.floor(time / 60000) * 60000).toISOString();

/**
 * Per-minute totals per (model, variant), accumulated in memory and written by `flush`. Each
 * gateway instance owns its rows (keyed by instance id) and rewrites them with its running
 * totals, so replicas never merge into one row and a repeated flush is harmless.
 */
export class MetricRollups {
  private flushing: Promise<void> = Promise.resolve();
  private readonly open = new Map<string, { minute: string; modelId: string; variantId: string; counts: RollupCounts; dirty: boolean }>();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly instanceId: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The counts of the current minute for this pair, to update in place. */
  counts(modelId: string, variantId: string): RollupCounts {
    const minute = minuteOf(this.now());
    const key = `${minute}|${modelId}|${variantId}`;
    let entry = this.open.get(key);
    if (!entry) {
      entry = { minute, modelId, variantId, counts: emptyCounts(), dirty: true };
      this.open.set(key, entry);
    }
    entry.dirty = true;
    return entry.counts;
  }

  /**
   * Writes the dirty counts. Flushes run one after another, so a caller whose flush resolves
   * reads every count made before it called, even while another flush was writing them.
   */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.writeDirty());
    this.flushing = next.catch(() => undefined);
    return next;
  }

  private async writeDirty(): Promise<void> {
    const current = minuteOf(this.now());
    const batch = [...this.open.entries()].filter(([, e]) => e.dirty);
    for (const [, entry] of batch) entry.dirty = false;
    try {
      for (const [, e] of batch) {
        const values = columnsOfCounts(e.counts);
        await this.db
          .insertInto('serving_rollups')
          .values({ minute: e.minute, model_id: e.modelId, variant_id: e.variantId, instance_id: this.instanceId, ...values })
          .onConflict((oc) => oc.columns(['minute', 'model_id', 'variant_id', 'instance_id']).doUpdateSet(values))
          .execute();
      }
    } catch (error) {
      for (const [, entry] of batch) entry.dirty = true;
      throw error;
    }
    // Past minutes are final once written.
    for (const [key, entry] of this.open) if (entry.minute < current && !entry.dirty) this.open.delete(key);
  }

  /** Totals per (minute, variant) since a time, summed over gateway instances, oldest first. */
  async query(modelId: string, since: Date): Promise<RollupRow[]> {
    const rows = await this.db
      .selectFrom('serving_rollups')
      .selectAll()
      .where('model_id', '=', modelId)
      .where('minute', '>=', minuteOf(since.getTime()))
      .orderBy('minute')
      .execute();
    const merged = new Map<string, RollupRow>();
    for (const row of rows) {
      const minute = toDate(row.minute);
      const key = `${minute.toISOString()}|${row.variant_id}`;
      let into = merged.get(key);
      if (!into) {
        into = { minute, modelId: row.model_id, variantId: row.variant_id, ...emptyCounts() };
        merged.set(key, into);
      }
      addCounts(into, countsOfColumns(row));
    }
    return [...merged.values()];
  }
}
