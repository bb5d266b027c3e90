import type { Preprocessing } from '../../workers/common/preprocessing';
import type { ModelSignature } from './model-signature';

export const MODEL_TASKS = ['CLASSIFICATION', 'RETRIEVAL'] as const;
export type ModelTask = (typeof MODEL_TASKS)[number];

export const VARIANT_STATUSES = ['registered', 'ready', 'failed', 'retired'] as const;
export type VariantStatus = (typeof VARIANT_STATUSES)[number];

export interface ModelRecord {
  id: string;
  name: string;
  task: ModelTask;
  description: string;
  labels: string[];
  preprocessing: Preprocessing;
  createdAt: Date;
  updatedAt: Date;
}

export interface VariantRecord {
  id: string;
  modelId: string;
  parentVariantId: string | null;
  /** Short human name unique within the model, such as `fp32` or `w4a4-fimaq`. */
  tag: string;
  /** Weight/activation precision, such as `FP32` or `W4A4`. */
  precision: string;
  /** How the variant was made: `upload` for registered files, else the quantization method. */
  method: string;
  config: Record<string, unknown>;
  /** Figures recorded with the variant (for example the worker's evaluation). */
  metrics: Record<string, unknown>;
  signature: ModelSignature;
  artifactSha256: string;
  artifactSize: number;
  status: VariantStatus;
  statusReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What a caller supplies for a new variant; the repository adds id, reason and timestamps. */
export type NewVariant = Omit<VariantRecord, 'id' | 'statusReason' | 'createdAt' | 'updatedAt'>;

export interface Actor {
  /** Token name (or `system` for the gateway itself), recorded in the audit log. */
  name: string;
}
