import type { Preprocessing } from '../../workers/common/preprocessing';

export type ModelTask = 'CLASSIFICATION' | 'RETRIEVAL';

/** The media type of every artifact the registry loaded as a model. */
export const ONNX_MEDIA_TYPE = 'application/onnx';

/** An uploaded or registered file as the registry recorded it. */
export interface ArtifactRecord {
  sha256: string;
  size: number;
  mediaType: string;
}

export type VariantStatus = 'registered' | 'ready' | 'failed' | 'retired';

/** A tensor as the Open Inference Protocol describes it: -1 marks a dimension of any size. */
export interface TensorSignature {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelSignature {
  inputs: TensorSignature[];
  outputs: TensorSignature[];
}

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
