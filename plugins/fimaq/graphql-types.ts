import { IsIn, IsInt, IsOptional, Length, Max, Min, ValidateNested } from 'class-validator';
import { RolloutPlanInput } from '../../schema/rollouts';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { JOB_STATUSES, QUANTIZATION_METHODS, SUPPORTED_BITS, type RetrievalReference } from '../../workers/common/jobs/messages';

const enumOf = <T extends string>(values: readonly T[]) => Object.fromEntries(values.map((v) => [v, v])) as { [K in T]: K };

export const QuantizationMethodEnum = enumOf(QUANTIZATION_METHODS);
registerEnumType(QuantizationMethodEnum, {
  name: 'QuantizationMethod',
  description: 'FIMAQ: FIMA-Q post-training quantization (= FISHER_DPLR). RTN: round-to-nearest with min/max calibration (fast baseline). '
    + 'CALIB: FIMA-Q stage 1 only. MSE, FISHER_DIAG, FISHER_LR, FISHER_BRECQ: stage 1 and block reconstruction with that loss (docs/fimaq.md).',
});

export const QuantizationBitsEnum = enumOf(Object.keys(SUPPORTED_BITS) as (keyof typeof SUPPORTED_BITS)[]);
registerEnumType(QuantizationBitsEnum, { name: 'QuantizationBits', description: 'Weight and activation bit widths.' });

export const RetrievalReferenceEnum = { GALLERY: 'GALLERY', PROTOTYPES: 'PROTOTYPES' } as const;
registerEnumType(RetrievalReferenceEnum, {
  name: 'RetrievalReference',
  description: 'What a retrieval model\'s reconstruction compares embeddings with (fimaq quantize --reference). '
    + 'GALLERY: the full-precision embeddings of the reconstruction images. PROTOTYPES: the mean full-precision embedding of each class (needs a labeled calibration set).',
});

/** The job contract's name of each GraphQL value. */
export const RETRIEVAL_REFERENCE_OF: Record<keyof typeof RetrievalReferenceEnum, RetrievalReference> = { GALLERY: 'gallery', PROTOTYPES: 'prototypes' };

export const QuantizationJobStatusEnum = enumOf(JOB_STATUSES);
registerEnumType(QuantizationJobStatusEnum, {
  name: 'QuantizationJobStatus',
  description: 'queued → running → succeeded | failed | cancelled.',
});

@InputType({ description: 'An image set: a dataset on the gateway\'s disk (path) or an uploaded file (artifactSha256).' })
export class ImageSetInput {
  @Field({ nullable: true, description: 'An IDX directory or file, an image folder or an .npy file on the gateway\'s disk.' })
  @IsOptional()
  @Length(1, 4096)
  path?: string;

  @Field({ nullable: true, description: 'SHA-256 returned by POST /v1/artifacts (an IDX images file or an .npy file).' })
  @IsOptional()
  artifactSha256?: string;

  @Field({ nullable: true, description: 'auto (from the path), idx, npy or image-folder; uploaded files need idx or npy.' })
  @IsOptional()
  @IsIn(['auto', 'idx', 'npy', 'image-folder'])
  format?: string;

  @Field({ nullable: true, description: 'For IDX directories: train (default) or test.' })
  @IsOptional()
  @IsIn(['train', 'test'])
  split?: string;
}

@InputType()
export class QuantizeModelInput {
  @Field({ description: 'Model name.' }) @Length(1, 64) model!: string;

  @Field({ nullable: true, description: 'Variant tag or id to quantize; defaults to the original upload.' })
  @IsOptional()
  baseVariant?: string;

  @Field(() => QuantizationMethodEnum, { defaultValue: 'FIMAQ' }) method!: keyof typeof QuantizationMethodEnum;
  @Field(() => QuantizationBitsEnum, { defaultValue: 'W4A4' }) bits!: keyof typeof QuantizationBitsEnum;

  @Field(() => ImageSetInput, { description: 'Calibration images (labels not needed).' })
  @ValidateNested()
  calibration!: ImageSetInput;

  @Field(() => Int, { defaultValue: 128, description: 'Calibration images.' }) @IsInt() @Min(1) @Max(100000) calibSize!: number;
  @Field(() => Int, { nullable: true, description: 'Images for block reconstruction; defaults to calibSize.' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100000)
  reconSize?: number;

  @Field(() => Int, { defaultValue: 1000, description: 'Optimization iterations per block (FIMAQ).' }) @IsInt() @Min(1) iters!: number;
  @Field(() => Int, { defaultValue: 5, description: 'Rank of the Fisher information approximation (FIMAQ).' }) @IsInt() @Min(1) rank!: number;
  @Field(() => Int, { defaultValue: 0 }) @IsInt() seed!: number;

  @Field(() => ImageSetInput, { nullable: true, description: 'Labeled images the worker evaluates the quantized model on.' })
  @IsOptional()
  @ValidateNested()
  evaluation?: ImageSetInput;

  @Field({ nullable: true, description: 'Repeating a request with the same key returns the first job instead of a new one.' })
  @IsOptional()
  @Length(1, 200)
  idempotencyKey?: string;

  @Field({ nullable: true, description: 'Serve the new variant as a shadow of its parent (default: FIMAQ_SHADOW_BY_DEFAULT).' })
  @IsOptional()
  shadow?: boolean;

  @Field(() => RolloutPlanInput, { nullable: true, description: 'Start a canary rollout of the new variant against its parent when the job succeeds (needs the rollouts plugin); the plan is checked now.' })
  @IsOptional()
  rollout?: RolloutPlanInput;
  @Field(() => RetrievalReferenceEnum, { nullable: true, description: 'Retrieval models only: the reference of the reconstruction\'s logits (default GALLERY).' })
  @IsOptional()
  reference?: keyof typeof RetrievalReferenceEnum;
}

@ObjectType({ description: 'The worker that runs (or ran) a job.' })
export class QuantizationWorker {
  @Field() workerId!: string;
  @Field() host!: string;
  @Field({ description: 'tfjs backend: tensorflow-gpu, tensorflow, wasm or cpu.' }) backend!: string;
  @Field() device!: string;
  @Field(() => Int) concurrency!: number;
}

@ObjectType()
export class QuantizationJob {
  @Field(() => ID) id!: string;
  @Field(() => ID) modelId!: string;
  @Field(() => ID) parentVariantId!: string;
  @Field(() => QuantizationJobStatusEnum) status!: string;
  @Field(() => QuantizationMethodEnum) method!: string;
  @Field(() => QuantizationBitsEnum) bits!: string;
  @Field(() => Int) calibSize!: number;
  @Field(() => Int) reconSize!: number;
  @Field(() => Int) iters!: number;
  @Field(() => Int) rank!: number;
  @Field(() => Int) seed!: number;
  @Field(() => String, { nullable: true, description: 'What the worker is doing (fetch, calibrate, reconstruct, export, choose-form, store, evaluate, evaluate-parent), then how the job ended: finished, failed or cancelled.' })
  stage!: string | null;
  @Field(() => Int, { nullable: true, description: 'The model block being worked on (1-based), in every stage that goes block by block.' })
  block!: number | null;
  @Field(() => Int, { nullable: true, description: 'Blocks in the model.' }) blocks!: number | null;
  @Field(() => Int, { nullable: true, description: 'Iteration within the current block (reconstruction).' }) iteration!: number | null;
  @Field(() => Int, { nullable: true, description: 'Iterations per block (reconstruction).' }) iterations!: number | null;
  @Field(() => Float, { description: 'Percent done, 0..100, one decimal; never goes back within an attempt.' }) progress!: number;
  @Field(() => Float, { nullable: true, description: 'Estimated seconds left, whole seconds.' }) etaSeconds!: number | null;
  @Field(() => Int, { description: 'Delivery attempt that last reported (more than 1 after a worker was lost).' }) attempt!: number;
  @Field(() => QuantizationWorker, { nullable: true }) worker!: QuantizationWorker | null;
  @Field(() => [String], { description: 'The last progress messages, oldest first.' }) log!: string[];
  @Field(() => String, { nullable: true, description: 'Why the job failed or was cancelled.' }) reason!: string | null;
  @Field(() => ID, { nullable: true, description: 'The variant the job produced.' }) variantId!: string | null;
  @Field(() => String, { nullable: true }) idempotencyKey!: string | null;
  @Field() createdBy!: string;
  @Field() createdAt!: Date;
  @Field() updatedAt!: Date;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) finishedAt!: Date | null;
}
