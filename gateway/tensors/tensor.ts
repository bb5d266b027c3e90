import { halfToNumber } from '../../workers/common/float16';

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
  datatype: Datatype;
  shape: number[];
  data: TensorArray;
}

interface DatatypeInfo {
  /** onnxruntime's name for the element type. */
  ort: string;
  bytes: number;
  /** Smallest and largest value an integer datatype holds; undefined for floats and BOOL. */
  range?: readonly [number, number];
  create(length: number): TensorArray;
  fromBytes(buffer: ArrayBuffer, offset: number, length: number): TensorArray;
}

function info<T extends TensorArray>(
  ort: string,
  Ctor: { new (length: number): T; new (buffer: ArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number },
  range?: readonly [number, number],
): DatatypeInfo {
  return {
    ort,
    bytes: Ctor.BYTES_PER_ELEMENT,
    range,
    create: (length) => new Ctor(length),
    fromBytes: (buffer, offset, length) => new Ctor(buffer, offset, length),
  };
}

/**
 * The one table of tensor datatypes: protocol name, onnxruntime name, size, range, typed array.
 * FP16 travels as raw bits (binary extension only). BYTES (strings) is described but not served.
 */
export const DATATYPES = {
  BOOL: info('bool', Uint8Array),
  UINT8: info('uint8', Uint8Array, [0, 2 ** 8 - 1]),
  INT8: info('int8', Int8Array, [-(2 ** 7), 2 ** 7 - 1]),
  UINT16: info('uint16', Uint16Array, [0, 2 ** 16 - 1]),
  INT16: info('int16', Int16Array, [-(2 ** 15), 2 ** 15 - 1]),
  UINT32: info('uint32', Uint32Array, [0, 2 ** 32 - 1]),
  INT32: info('int32', Int32Array, [-(2 ** 31), 2 ** 31 - 1]),
  // JSON numbers are doubles: past 2^53 they are not exact anyway, so the bounds need not be either.
  UINT64: info('uint64', BigUint64Array, [0, 2 ** 64 - 1]),
  INT64: info('int64', BigInt64Array, [-(2 ** 63), 2 ** 63 - 1]),
  FP16: info('float16', Uint16Array),
  FP32: info('float32', Float32Array),
  FP64: info('float64', Float64Array),
} as const satisfies Record<string, DatatypeInfo>;

/** A datatype the gateway serves, as the Open Inference Protocol names it. */
export type Datatype = keyof typeof DATATYPES;

const ORT_TO_DATATYPE: Record<string, string> = { ...Object.fromEntries(Object.entries(DATATYPES).map(([name, d]) => [d.ort, name])), string: 'BYTES' };

export function isDatatype(datatype: unknown): datatype is Datatype {
  return typeof datatype === 'string' && Object.hasOwn(DATATYPES, datatype);
}

export function datatypeInfo(datatype: string): DatatypeInfo | undefined {
  return isDatatype(datatype) ? DATATYPES[datatype] : undefined;
}

/** The protocol's name for an onnxruntime element type; unknown types keep their name, upper-cased. */
export function datatypeOfOrtType(ortType: string): string {
  return ORT_TO_DATATYPE[ortType] ?? ortType.toUpperCase();
}

/** The row-major multi-dimensional index of flat element `flat` of a tensor of `shape`. */
export function indexOf(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = flat % shape[d];
    flat = Math.floor(flat / shape[d]);
  }
  return index;
}

const FP16_EXPONENT = 0x7c00;

/**
 * The first NaN or ±Infinity of a floating-point tensor, or undefined when every element is
 * finite (always for integer datatypes). Runs on every request and answer, so it is one tight loop.
 */
export function firstNonFinite(tensor: Tensor): { flat: number; value: number } | undefined {
  const { data } = tensor;
  if (tensor.datatype === 'FP16') {
    const bits = data as Uint16Array;
    for (let i = 0; i < bits.length; i++) {
      if ((bits[i] & FP16_EXPONENT) === FP16_EXPONENT) return { flat: i, value: halfToNumber(bits[i]) };
    }
    return undefined;
  }
  if (!(data instanceof Float32Array || data instanceof Float64Array)) return undefined;
  for (let i = 0; i < data.length; i++) {
    // x - x is 0 for every finite x and NaN for NaN and both infinities.
    if (data[i] - data[i] !== 0) return { flat: i, value: data[i] };
  }
  return undefined;
}

/** "element [0, 3] is NaN": where a tensor is not finite, for error messages. */
export function describeNonFinite(tensor: Tensor, found: { flat: number; value: number }): string {
  return `element [${indexOf(found.flat, tensor.shape).join(', ')}] is ${found.value}`;
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
