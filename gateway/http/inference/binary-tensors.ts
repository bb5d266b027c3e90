import { badInput } from '../../errors';
import { DATATYPES, elementCount, isDatatype, type Tensor } from '../../tensors/tensor';
import type { DeclaredInput } from './json-tensors';

export const HEADER_LENGTH = 'inference-header-content-length';

/**
 * The binary tensor extension: the body is a JSON header of `Inference-Header-Content-Length`
 * bytes followed by the raw little-endian data of every input that declares
 * `binary_data_size`, in input order. Splits the body and checks that the sizes add up.
 */
export function splitBinaryBody(body: Buffer, headerLength: string): { header: Buffer; binary: Buffer } {
  const length = Number(headerLength);
  if (!/^\d+$/.test(headerLength.trim()) || length > body.length) {
    throw badInput(`Inference-Header-Content-Length is ${JSON.stringify(headerLength)} but the body has ${body.length} bytes`);
  }
  return { header: body.subarray(0, length), binary: body.subarray(length) };
}

/** A fresh, aligned typed array over `bytes` (the body's buffer may be pooled or misaligned). */
export function tensorFromBytes(name: string, datatype: string, shape: number[], bytes: Buffer): Tensor {
  if (!isDatatype(datatype)) throw badInput(`input "${name}" has unsupported datatype ${datatype}`);
  const type = DATATYPES[datatype];
  const expected = elementCount(shape) * type.bytes;
  if (bytes.length !== expected) {
    throw badInput(`input "${name}": ${bytes.length} bytes of data but shape [${shape.join(', ')}] of ${datatype} needs ${expected}`);
  }
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  return { name, datatype, shape, data: type.fromBytes(copy, 0, elementCount(shape)) };
}

/** Attaches each binary input's slice of the binary section; refuses sizes that do not add up. */
export function binaryInputs(inputs: DeclaredInput[], binary: Buffer): Map<string, Tensor> {
  const declared = inputs.reduce((sum, input) => sum + (input.binaryDataSize ?? 0), 0);
  if (declared !== binary.length) {
    throw badInput(`the inputs declare ${declared} bytes of binary data (binary_data_size) but the body carries ${binary.length} after the JSON header`);
  }
  const tensors = new Map<string, Tensor>();
  let offset = 0;
  for (const input of inputs) {
    if (input.binaryDataSize === undefined) continue;
    tensors.set(input.name, tensorFromBytes(input.name, input.datatype, input.shape, binary.subarray(offset, offset + input.binaryDataSize)));
    offset += input.binaryDataSize;
  }
  return tensors;
}

/** The raw bytes of a tensor, little-endian as the extension specifies (and as every host here is). */
export function tensorBytes(tensor: Tensor): Buffer {
  return Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
}
