import { badInput } from '../../errors';
import type { TensorSignature } from '../../registry/registry-types';
import { datatypeInfo, type Tensor } from '../../tensors/tensor';
import { binaryInputs, HEADER_LENGTH, splitBinaryBody, tensorBytes, tensorFromBytes } from './binary-tensors';
import { declaredRequest, jsonValues, parseJson, tensorFromJson, type RequestedOutput } from './json-tensors';

/** A decoded inference request: what the serving layer needs plus how to shape the answer. */
export interface DecodedRequest {
  id: string | undefined;
  inputs: Tensor[];
  outputs: RequestedOutput[];
  binaryOutputsByDefault: boolean;
}

export interface EncodedResponse {
  body: Buffer;
  contentType: string;
  /** Set when the body carries binary outputs after its JSON header. */
  headerLength?: number;
}

/**
 * A raw request (`Inference-Header-Content-Length: 0`): the whole body is the single input's
 * data; the batch size follows from the byte count, every other dimension must be fixed.
 */
function rawRequest(body: Buffer, input: TensorSignature | undefined): DecodedRequest {
  if (!input) throw badInput('raw binary requests need a model with exactly one input');
  const type = datatypeInfo(input.datatype);
  const rowElements = input.shape.slice(1).reduce((a, b) => a * b, 1);
  if (!type || input.shape.slice(1).some((d) => d < 0)) throw badInput(`raw binary requests need fixed non-batch dimensions; input "${input.name}" is [${input.shape.join(', ')}]`);
  const rowBytes = rowElements * type.bytes;
  if (body.length === 0 || body.length % rowBytes !== 0) {
    throw badInput(`raw body of ${body.length} bytes is not a whole number of ${input.datatype} rows of [${input.shape.slice(1).join(', ')}] (${rowBytes} bytes each)`);
  }
  const rows = body.length / rowBytes;
  if (input.shape[0] !== -1 && input.shape[0] !== rows) throw badInput(`input "${input.name}" takes batches of ${input.shape[0]}; the raw body holds ${rows}`);
  return { id: undefined, inputs: [tensorFromBytes(input.name, input.datatype, [rows, ...input.shape.slice(1)], body)], outputs: [], binaryOutputsByDefault: false };
}

/** JSON, JSON + binary tensors, or a raw tensor, told apart by `Inference-Header-Content-Length`. */
export function decodeInferenceRequest(body: Buffer, headerLength: string | undefined, rawInput: () => TensorSignature | undefined): DecodedRequest {
  if (headerLength !== undefined && headerLength.trim() === '0') return rawRequest(body, rawInput());
  const { header, binary } = headerLength === undefined ? { header: body, binary: Buffer.alloc(0) } : splitBinaryBody(body, headerLength);
  const declared = declaredRequest(parseJson(header, 'inference request'));
  const fromBinary = binaryInputs(declared.inputs, binary);
  const inputs = declared.inputs.map((input) => fromBinary.get(input.name) ?? tensorFromJson(input));
  return { id: declared.id, inputs, outputs: declared.outputs, binaryOutputsByDefault: declared.binaryOutputsByDefault };
}

/** The inference response object; binary outputs go after the JSON header when asked for. */
export function encodeInferenceResponse(
  request: DecodedRequest,
  answer: { modelName: string; modelVersion: string; id: string; outputs: Tensor[] },
): EncodedResponse {
  const binaryParts: Buffer[] = [];
  const outputs = answer.outputs.map((tensor) => {
    const asked = request.outputs.find((o) => o.name === tensor.name);
    const binary = asked ? asked.binary : request.binaryOutputsByDefault;
    if (!binary) return { name: tensor.name, datatype: tensor.datatype, shape: tensor.shape, data: jsonValues(tensor) };
    const bytes = tensorBytes(tensor);
    binaryParts.push(bytes);
    return { name: tensor.name, datatype: tensor.datatype, shape: tensor.shape, parameters: { binary_data_size: bytes.length } };
  });
  const json = Buffer.from(JSON.stringify({ model_name: answer.modelName, model_version: answer.modelVersion, id: answer.id, outputs }));
  if (binaryParts.length === 0) return { body: json, contentType: 'application/json' };
  return { body: Buffer.concat([json, ...binaryParts]), contentType: 'application/octet-stream', headerLength: json.length };
}

export { HEADER_LENGTH };
