import type { Generated } from 'kysely';
import type { Database, Json, Timestamp } from '../../gateway/plugin-surface';

/** The plugin's tables, created by its migration `0003_jobs`. */
export interface QuantizationJobsTable {
  id: string;
  model_id: string;
  parent_variant_id: string;
  idempotency_key: string | null;
  /** The mutation's input as normalized, to tell a repeated request from a conflicting one. */
  request: Json;
  /** The job message (workers/common/jobs/messages.ts) as published. */
  spec: Json;
  status: string;
  stage: string | null;
  block: number | null;
  blocks: number | null;
  /** Added by `0021_job_iterations`. */
  iteration: number | null;
  iterations: number | null;
  progress: number;
  eta_seconds: number | null;
  attempt: number;
  worker: Json | null;
  /** JSON array of the last progress messages. */
  log: Json;
  reason: string | null;
  variant_id: string | null;
  created_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
}

export interface JobOutboxTable {
  id: Generated<number>;
  job_id: string;
  /** `dispatch` or `cancel`. */
  kind: string;
  attempts: number;
  available_at: Timestamp;
  last_error: string | null;
  created_at: Timestamp;
}

export type FimaqTables = {
  quantization_jobs: QuantizationJobsTable;
  job_outbox: JobOutboxTable;
};

/** The core's tables and the plugin's, as the job repository queries them. */
export type FimaqDatabase = Database & FimaqTables;
