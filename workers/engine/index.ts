/**
 * The quantization engine: ONNX vision models as differentiable tfjs programs, quantization
 * sites, block partition, methods (rtn) and QDQ export. quantizeModel is the entry the CLI and
 * the job worker call; methods such as FIMA-Q build on the modules behind it directly.
 */
export { initBackend } from './backend';
export { exportQdq } from './export/qdq';
export { ortKernelCounts, INTEGER_KERNELS } from './export/ort-kernels';
export { forward, type ImageModel } from './image-model';
export { parseOnnx } from './onnx/graph';
export { quantizeModel, type QuantizeReport } from './quantize-model';
export type { QuantizedModel } from './simulation';
