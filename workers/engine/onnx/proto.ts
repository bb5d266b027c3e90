/** ONNX protobuf decoding and encoding (onnx-proto, protobufjs based) with errors a user can act on. */
import { InputError } from '../../data/errors';
import { onnx } from 'onnx-proto';

export { onnx };

/** protobufjs hands 64-bit integers back as numbers or Long objects depending on their size. */
export type Int64Like = number | { toNumber(): number } | { low: number; high: number };

export function int64ToNumber(value: Int64Like | null | undefined): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'number') return value;
  if ('toNumber' in value) return value.toNumber();
  return value.high * 4294967296 + (value.low >>> 0);
}

export function decodeModel(bytes: Uint8Array, source = 'model'): onnx.ModelProto {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new InputError(`${source} is not a valid ONNX protobuf: ${(err as Error).message}`);
  }
  if (!model.graph?.node?.length) {
    throw new InputError(`${source} is not a valid ONNX model: it has no graph nodes`);
  }
  return model;
}

export function encodeModel(model: onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Version of the default ("" or "ai.onnx") operator set the model imports. */
export function defaultOpset(model: onnx.IModelProto): number {
  const entry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry ? int64ToNumber(entry.version as Int64Like) : 1;
}
