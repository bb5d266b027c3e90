/**
 * ONNX TensorProto <-> host arrays. tfjs has no 64-bit types, so int64 becomes int32 (clamped,
 * which keeps Slice's INT64_MAX "to the end" meaning) and double becomes float32.
 */
import { InputError } from '../../data/errors';
import { onnx, Int64Like, int64ToNumber } from './proto';
import { halfToNumber } from '../../common/float16';

export type HostDType = 'float32' | 'int32' | 'bool';

export interface HostTensor {
  dtype: HostDType;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

const DT = onnx.TensorProto.DataType;
const INT32_MAX = 2147483647;
const INT32_MIN = -2147483648;

export function hostDType(onnxType: number): HostDType {
  switch (onnxType) {
    case DT.FLOAT:
    case DT.DOUBLE:
    case DT.FLOAT16:
    case DT.BFLOAT16:
      return 'float32';
    case DT.BOOL:
      return 'bool';
    case DT.INT8:
    case DT.UINT8:
    case DT.INT16:
    case DT.UINT16:
    case DT.INT32:
    case DT.UINT32:
    case DT.INT64:
    case DT.UINT64:
      return 'int32';
    default:
      throw new InputError(`ONNX tensor type ${DT[onnxType] ?? onnxType} is not supported by the engine`);
  }
}

function clampInt32(v: number): number {
  return Math.max(INT32_MIN, Math.min(INT32_MAX, v));
}

function bfloat16ToFloat(bits: number): number {
  return new Float32Array(new Uint32Array([(bits & 0xffff) << 16]).buffer)[0];
}

function readRaw(t: onnx.ITensorProto, count: number): number[] {
  const raw = t.rawData as Uint8Array;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    switch (t.dataType) {
      case DT.FLOAT: out[i] = view.getFloat32(i * 4, true); break;
      case DT.DOUBLE: out[i] = view.getFloat64(i * 8, true); break;
      case DT.FLOAT16: out[i] = halfToNumber(view.getUint16(i * 2, true)); break;
      case DT.BFLOAT16: out[i] = bfloat16ToFloat(view.getUint16(i * 2, true)); break;
      case DT.INT8: out[i] = view.getInt8(i); break;
      case DT.UINT8: case DT.BOOL: out[i] = view.getUint8(i); break;
      case DT.INT16: out[i] = view.getInt16(i * 2, true); break;
      case DT.UINT16: out[i] = view.getUint16(i * 2, true); break;
      case DT.INT32: out[i] = view.getInt32(i * 4, true); break;
      case DT.UINT32: out[i] = view.getUint32(i * 4, true); break;
      case DT.INT64: case DT.UINT64: out[i] = Number(view.getBigInt64(i * 8, true)); break;
      default: throw new InputError(`raw data of ONNX type ${t.dataType} is not supported`);
    }
  }
  return out;
}

function readTyped(t: onnx.ITensorProto): number[] {
  switch (t.dataType) {
    case DT.FLOAT: return t.floatData ?? [];
    case DT.DOUBLE: return t.doubleData ?? [];
    case DT.INT64: return (t.int64Data ?? []).map((v) => int64ToNumber(v as Int64Like));
    case DT.UINT32: case DT.UINT64: return (t.uint64Data ?? []).map((v) => int64ToNumber(v as Int64Like));
    case DT.FLOAT16: return (t.int32Data ?? []).map(halfToNumber);
    case DT.BFLOAT16: return (t.int32Data ?? []).map(bfloat16ToFloat);
    default: return t.int32Data ?? [];
  }
}

export function tensorFromProto(t: onnx.ITensorProto): HostTensor {
  const name = t.name ? ` '${t.name}'` : '';
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new InputError(`tensor${name} uses external data, which the engine does not read; re-export with weights embedded`);
  }
  const dataType = t.dataType ?? DT.UNDEFINED;
  const dtype = hostDType(dataType);
  const shape = (t.dims ?? []).map((d) => int64ToNumber(d as Int64Like));
  const count = shape.reduce((a, b) => a * b, 1);
  const values = t.rawData && t.rawData.length > 0 ? readRaw(t, count) : readTyped(t);
  if (values.length !== count) {
    throw new InputError(`tensor${name} holds ${values.length} values but its shape [${shape}] needs ${count}`);
  }
  const data = dtype === 'float32' ? Float32Array.from(values)
    : dtype === 'int32' ? Int32Array.from(values, clampInt32)
      : Uint8Array.from(values, (v) => (v ? 1 : 0));
  return { dtype, shape, data };
}

/** Encodes host values as an ONNX tensor of the given ONNX element type (raw little-endian data). */
export function tensorToProto(name: string, onnxType: number, shape: readonly number[], values: ArrayLike<number>): onnx.ITensorProto {
  const width: Partial<Record<number, number>> = {
    [DT.FLOAT]: 4, [DT.INT8]: 1, [DT.UINT8]: 1, [DT.INT32]: 4, [DT.INT64]: 8, [DT.BOOL]: 1, [DT.DOUBLE]: 8,
  };
  const bytes = width[onnxType];
  if (!bytes) throw new InputError(`writing ONNX type ${DT[onnxType] ?? onnxType} is not supported`);
  const raw = new Uint8Array(values.length * bytes);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    switch (onnxType) {
      case DT.FLOAT: view.setFloat32(i * 4, v, true); break;
      case DT.DOUBLE: view.setFloat64(i * 8, v, true); break;
      case DT.INT8: view.setInt8(i, v); break;
      case DT.UINT8: case DT.BOOL: view.setUint8(i, v); break;
      case DT.INT32: view.setInt32(i * 4, v, true); break;
      case DT.INT64: view.setBigInt64(i * 8, BigInt(Math.trunc(v)), true); break;
    }
  }
  return { name, dataType: onnxType, dims: [...shape], rawData: raw };
}
