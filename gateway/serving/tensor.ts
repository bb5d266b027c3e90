/**
 * Tensors as the serving layer sees them, independent of the wire format: an Open Inference
 * Protocol datatype, a shape and a flat row-major typed array.
 */
export type TensorArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

export interface Tensor {
  name: string;
  datatype: string;
  shape: number[];
  data: TensorArray;
}

interface DatatypeInfo {
  /** onnxruntime's name for the element type. */
  ort: string;
  bytes: number;
  create(length: number): TensorArray;
  fromBytes(buffer: ArrayBuffer, offset: number, length: number): TensorArray;
}

function info<T extends TensorArray>(
  ort: string,
  Ctor: { new (length: number): T; new (buffer: ArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number },
): DatatypeInfo {
  return {
    ort,
    bytes: Ctor.BYTES_PER_ELEMENT,
    create: (length) => new Ctor(length),
    fromBytes: (buffer, offset, length) => new Ctor(buffer, offset, length),
  };
}

/** Numeric datatypes the gateway serves. FP16 travels as raw bits (binary extension only). */
export const DATATYPES: Readonly<Record<string, DatatypeInfo>> = {
  BOOL: info('bool', Uint8Array),
  UINT8: info('uint8', Uint8Array),
  INT8: info('int8', Int8Array),
  UINT16: info('uint16', Uint16Array),
  INT16: info('int16', Int16Array),
  UINT32: info('uint32', Uint32Array),
  INT32: info('int32', Int32Array),
  UINT64: info('uint64', BigUint64Array),
  INT64: info('int64', BigInt64Array),
  FP16: info('float16', Uint16Array),
  FP32: info('float32', Float32Array),
  FP64: info('float64', Float64Array),
};

const ORT_TO_DATATYPE = Object.fromEntries(Object.entries(DATATYPES).map(([name, d]) => [d.ort, name]));

export function datatypeInfo(datatype: string): DatatypeInfo | undefined {
  return Object.hasOwn(DATATYPES, datatype) ? DATATYPES[datatype] : undefined;
}

export function datatypeOfOrtType(ortType: string): string {
  return ORT_TO_DATATYPE[ortType] ?? ortType.toUpperCase();
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, d) => product * d, 1);
}

/** A private copy, for a second consumer (a shadow run) of arrays the first may transfer away. */
export function copyTensor(tensor: Tensor): Tensor {
  return { ...tensor, shape: [...tensor.shape], data: tensor.data.slice() };
}

/** Float view of a numeric output, for comparisons and class probabilities. */
export function toFloat64(data: TensorArray): Float64Array {
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  return out;
}
