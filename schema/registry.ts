import { GraphQLJSONObject } from 'graphql-scalars';
import { ArrayMaxSize, IsIn, IsInt, IsOptional, IsString, Length, Max, Min, ValidateNested } from 'class-validator';
import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';

export enum ModelTaskEnum {
  CLASSIFICATION = 'CLASSIFICATION',
  RETRIEVAL = 'RETRIEVAL',
}
registerEnumType(ModelTaskEnum, {
  name: 'ModelTask',
  description: 'CLASSIFICATION: the output is [batch, classes] logits. RETRIEVAL: the output is [batch, dim] embeddings.',
});

export enum VariantStatusEnum {
  registered = 'registered',
  ready = 'ready',
  failed = 'failed',
  retired = 'retired',
}
registerEnumType(VariantStatusEnum, { name: 'VariantStatus' });

export enum TensorLayoutEnum {
  NCHW = 'NCHW',
  NHWC = 'NHWC',
}
registerEnumType(TensorLayoutEnum, { name: 'TensorLayout' });

@ObjectType({ description: 'How images become the model input: x = (pixel / 255 - mean) / std per channel.' })
export class Preprocessing {
  @Field() inputName!: string;
  @Field(() => TensorLayoutEnum) layout!: TensorLayoutEnum;
  @Field(() => Int) height!: number;
  @Field(() => Int) width!: number;
  @Field(() => Int) channels!: number;
  @Field(() => [Number]) mean!: number[];
  @Field(() => [Number]) std!: number[];
}

@ObjectType({ description: 'A tensor as the Open Inference Protocol describes it; -1 marks a dimension of any size.' })
export class TensorSignature {
  @Field() name!: string;
  @Field() datatype!: string;
  @Field(() => [Int]) shape!: number[];
}

@ObjectType()
export class ModelSignature {
  @Field(() => [TensorSignature]) inputs!: TensorSignature[];
  @Field(() => [TensorSignature]) outputs!: TensorSignature[];
}

@ObjectType({ description: 'One servable ONNX file of a model: the uploaded original or a quantized child.' })
export class Variant {
  @Field(() => ID) id!: string;
  @Field(() => ID) modelId!: string;
  @Field(() => ID, { nullable: true }) parentVariantId!: string | null;
  @Field({ description: 'Unique within the model, such as fp32 or w4a4-fimaq.' }) tag!: string;
  @Field({ description: 'Weight/activation precision, such as FP32 or W4A4.' }) precision!: string;
  @Field({ description: 'upload for registered files, else the quantization method.' }) method!: string;
  @Field(() => GraphQLJSONObject) config!: Record<string, unknown>;
  @Field(() => GraphQLJSONObject, { description: 'Figures recorded with the variant, such as the worker evaluation.' })
  metrics!: Record<string, unknown>;
  @Field(() => ModelSignature) signature!: ModelSignature;
  @Field() artifactSha256!: string;
  @Field(() => Number, { description: 'Bytes.' }) artifactSize!: number;
  @Field(() => VariantStatusEnum) status!: VariantStatusEnum;
  @Field(() => String, { nullable: true }) statusReason!: string | null;
  @Field() createdAt!: Date;
  @Field() updatedAt!: Date;
}

@ObjectType()
export class Model {
  @Field(() => ID) id!: string;
  @Field() name!: string;
  @Field(() => ModelTaskEnum) task!: ModelTaskEnum;
  @Field() description!: string;
  @Field(() => [String]) labels!: string[];
  @Field(() => Preprocessing) preprocessing!: Preprocessing;
  @Field() createdAt!: Date;
  @Field() updatedAt!: Date;
}

@InputType()
export class PreprocessingInput {
  @Field({ nullable: true, description: "Defaults to the model card's, else the model's only input." })
  @IsOptional()
  @IsString()
  inputName?: string;

  @Field(() => TensorLayoutEnum, { nullable: true, description: "Defaults to the model card's, else NCHW." })
  @IsOptional()
  layout?: TensorLayoutEnum;

  @Field(() => Int, { nullable: true, description: "Defaults to the model card's; required without a card." })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(4096)
  height?: number;

  @Field(() => Int, { nullable: true, description: "Defaults to the model card's; required without a card." })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(4096)
  width?: number;

  @Field(() => Int, { nullable: true, description: "1 or 3. Defaults to the model card's; required without a card." })
  @IsOptional()
  @IsIn([1, 3])
  channels?: number;

  @Field(() => [Number], { nullable: true, description: "Defaults to the model card's, else 0 per channel." })
  @IsOptional()
  @ArrayMaxSize(3)
  mean?: number[];

  @Field(() => [Number], { nullable: true, description: "Defaults to the model card's, else 1 per channel." })
  @IsOptional()
  @ArrayMaxSize(3)
  std?: number[];
}

@InputType({
  description:
    'Task, description, labels and preprocessing default to those of the model card: the one uploaded as cardArtifactSha256, ' +
    'else <model>.card.json (or <model>.onnx.card.json) beside localPath. Fields given here win over the card.',
})
export class RegisterModelInput {
  @Field() @Length(1, 64) name!: string;

  @Field(() => ModelTaskEnum, { nullable: true, description: "Defaults to the model card's; required without a card." })
  @IsOptional()
  task?: ModelTaskEnum;

  @Field({ nullable: true }) @IsOptional() @Length(0, 2000) description?: string;

  @Field(() => [String], {
    nullable: true,
    description: "Class names in output order (classifiers). Defaults to the model card's, else class_0..class_{K-1}.",
  })
  @IsOptional()
  @ArrayMaxSize(100000)
  labels?: string[];

  @Field(() => PreprocessingInput, { nullable: true, description: "Each field given wins over the model card's; height, width and channels are required without a card." })
  @IsOptional()
  @ValidateNested()
  preprocessing?: PreprocessingInput;

  @Field({ nullable: true, description: 'SHA-256 returned by POST /v1/artifacts.' })
  @IsOptional()
  artifactSha256?: string;

  @Field({ nullable: true, description: "A file on the gateway's disk (admins only)." })
  @IsOptional()
  localPath?: string;

  @Field({ nullable: true, description: 'SHA-256 of a model card (JSON, as in deploy/demo/models/*.card.json) uploaded to POST /v1/artifacts.' })
  @IsOptional()
  cardArtifactSha256?: string;
}

@ObjectType()
export class RegisterModelResult {
  @Field(() => Model) model!: Model;
  @Field(() => Variant, { description: 'The fp32 variant made from the uploaded file.' }) variant!: Variant;
}
