import type { ColumnType, Generated } from 'kysely';

/**
 * Row types as stored. JSON columns are text on both dialects; timestamps are text on SQLite and
 * timestamptz on PostgreSQL. Repositories convert both to plain values (see `db/codec.ts`), so
 * nothing above them sees a dialect difference.
 */
type Timestamp = ColumnType<Date | string, string, string>;
type Json = string;

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

export interface Database {
  models: ModelsTable;
  variants: VariantsTable;
  artifacts: ArtifactsTable;
  api_tokens: ApiTokensTable;
  audit_log: AuditLogTable;
}
