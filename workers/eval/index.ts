/** Model evaluation on datasets: classification accuracy and retrieval metrics. */
export { evaluateModel } from './evaluate';
export type { EvaluationOptions, EvaluationProgress, EvaluationResult, EvaluationStage, EvaluationTask } from './evaluate';
export { OnnxImageModel } from './onnx-model';
export type { ClassificationMetrics } from './classification';
export type { RetrievalMetrics, EmbeddingSet } from './retrieval';
export { retrievalMetrics } from './retrieval';
