import type { ModelCard } from '../../workers/common/model-card';
import type { ModelRecord, VariantRecord } from './registry-types';

/**
 * The model card of one variant: what `fimaq evaluate` reads beside the ONNX file (task,
 * preprocessing, labels, output) and what the registry knows of the variant (its figures, its
 * lineage and method), so a downloaded pair is evaluated and understood without the gateway.
 */
export function variantCard(model: ModelRecord, variant: VariantRecord): ModelCard {
  return {
    name: `${model.name}-${variant.tag}`,
    task: model.task,
    description: model.description,
    preprocessing: model.preprocessing,
    labels: model.labels,
    output: variant.signature.outputs[0]?.name,
    metrics: variant.metrics,
    variant: {
      id: variant.id,
      model: model.name,
      tag: variant.tag,
      precision: variant.precision,
      method: variant.method,
      config: variant.config,
      parentVariantId: variant.parentVariantId,
      status: variant.status,
      artifactSha256: variant.artifactSha256,
      artifactSize: variant.artifactSize,
      createdAt: variant.createdAt.toISOString(),
    },
  };
}
