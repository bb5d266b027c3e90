import type { ColumnType, Generated } from 'kysely';

/**
 * Row types as stored. JSON columns are text on both dialects; timestamps are text on SQLite and
 * timestamptz on PostgreSQL. Repositories convert both to plain values (see `db/codec.ts`), so
 * nothing above them sees a dialect difference.
 */
export type Timestamp = ColumnType<Date | string, string, string>;
export type Json = string;

export interface GalleriesTable {
  model_id: string;
  revision: number;
  updated_at: Timestamp;
}

export interface GalleryItemsTable {
  model_id: string;
  item_id: string;
  image_sha256: string;
  /** The item's class, matched against the class a retrieval query's feedback names (0007). */
  label: string | null;
  revision: number;
  updated_at: Timestamp;
}

export interface ModelsTable {
  id: string;
  name: string;
  task: string;
  description: string;
  labels: Json;
  preprocessing: Json;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface VariantsTable {
  id: string;
  model_id: string;
  parent_variant_id: string | null;
  tag: string;
  precision: string;
  method: string;
  config: Json;
  metrics: Json;
  signature: Json;
  artifact_sha256: string;
  artifact_size: number | string;
  status: string;
  status_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ArtifactsTable {
  sha256: string;
  size: number | string;
  media_type: string;
  created_at: Timestamp;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  role: string;
  token_hash: string;
  created_at: Timestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface AuditLogTable {
  id: Generated<number>;
  actor: string;
  action: string;
  subject_type: string;
  subject_id: string;
  details: Json;
  created_at: Timestamp;
}

export interface TrafficPoliciesTable {
  model_id: string;
  policy: Json;
  version: number;
  updated_by: string;
  updated_at: Timestamp;
}

/** One gateway instance's totals for one (model, variant) in one minute. */
/** Bucket i of `ROLLUP_LATENCY_BUCKETS_MS`; index 12 is the overflow bucket. */
export type RollupBucketIndex = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12;
export type LatencyBucketColumn = `latency_bucket_${RollupBucketIndex}`;
export type ComputeBucketColumn = `compute_bucket_${RollupBucketIndex}`;

/** Counts per latency bucket: end to end (answered requests) and onnxruntime compute (per request run). */
type RollupHistogramColumns = { [C in LatencyBucketColumn | ComputeBucketColumn]: number };

export interface ServingRollupsTable extends RollupHistogramColumns {
  minute: Timestamp;
  model_id: string;
  variant_id: string;
  instance_id: string;
  requests: number;
  errors: number;
  shadow_requests: number;
  shadow_errors: number;
  latency_ms_sum: number;
  compute_ms_sum: number;
  /** Mirrored requests dropped because the shadow's queue was full. */
  shadow_dropped: number;
  compared: number;
  agreed: number;
  kl_sum: number;
  top1_delta_sum: number;
  cosine_sum: number;
  overlap_sum: number;
  /** Compared rows that had a gallery to find neighbours in (the denominator of overlap_sum). */
  overlap_compared: number;
  feedback: number;
  correct: number;
  /** Feedback rows this shadow and the request's answering variant both predicted: both right. */
  paired_both: number;
  /** ... only the answering (primary) variant right. */
  paired_primary_only: number;
  /** ... only this shadow right. */
  paired_shadow_only: number;
  /** ... both wrong. */
  paired_neither: number;
  /** Retrieval (0007): sums of squares, so means carry intervals. */
  cosine_sq_sum: number;
  overlap_sq_sum: number;
  /** Rank correlation of the top-k neighbours, over the rows of overlap_compared. */
  rank_correlation_sum: number;
  rank_correlation_sq_sum: number;
  /** Average precision@k per query with feedback (the denominator is feedback; correct counts hits@k). */
  average_precision_sum: number;
  average_precision_sq_sum: number;
  /** On a shadow's row: its AP@k minus the answering variant's, per paired query. */
  paired_ap_delta_sum: number;
  paired_ap_delta_sq_sum: number;
}

export interface Database {
  models: ModelsTable;
  variants: VariantsTable;
  artifacts: ArtifactsTable;
  api_tokens: ApiTokensTable;
  audit_log: AuditLogTable;
  traffic_policies: TrafficPoliciesTable;
  serving_rollups: ServingRollupsTable;
  galleries: GalleriesTable;
  gallery_items: GalleryItemsTable;
}
