/**
 * The quantization engine: ONNX vision models as differentiable tfjs programs, quantization
 * sites, block partition, methods (rtn) and QDQ export. quantizeModel is the entry the CLI and
 * the job worker call; the rest is the toolbox methods such as FIMA-Q build on.
 */
export { initBackend, type EngineBackend } from './backend';
export { parseBits, formatBits, type BitWidths } from './bits';
export { partitionBlocks, runBlock, describeBlocks, type Block, type BlockKind } from './blocks';
export { MinMaxObserver } from './calibration';
export { exportQdq } from './export/qdq';
export { ortKernelCounts, INTEGER_KERNELS } from './export/ort-kernels';
export { forward, loadImageModel, loadImageModelFile, type ImageModel, type ImageInput } from './image-model';
export { methodNames, methodFor, type MethodContext, type MethodProgress, type QuantizationMethod } from './methods';
export { parseOnnx, type OnnxGraph, type GraphNode } from './onnx/graph';
export { OnnxProgram, type OperandHook, type RunOptions } from './program';
export { UniformQuantizer, fakeQuantize, minMaxParameters, quantizeToIntegers, roundStraightThrough } from './quantizer';
export {
  quantizeModel, type CalibrationSource, type QuantizeOptions, type QuantizeProgress, type QuantizeReport, type QuantizeResult,
} from './quantize-model';
export { QuantizedModel, operandKey, parameterShape, type OperandTransform } from './simulation';
export { findSites, type QuantSite, type OperandSpec, type SiteOptions, type Granularity } from './sites';
