/** Model evaluation on datasets: classification accuracy and retrieval metrics. */
export { evaluateModel, type EvaluationResult, type EvaluationTask } from './evaluate';
export { OnnxImageModel } from './onnx-model';
export { retrievalMetrics, type EmbeddingSet } from './retrieval';
export { chooseTask, describeTaskChoice, type TaskChoice } from './task-choice';
