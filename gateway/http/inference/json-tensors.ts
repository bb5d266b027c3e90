import { halfToNumber } from '../../../workers/common/float16';
import { badInput } from '../../errors';
import { DATATYPES, elementCount, indexOf, isDatatype, type Datatype, type Tensor, type TensorArray } from '../../tensors/tensor';

/** An input as the request's JSON header declares it, before its data is attached. */
export interface DeclaredInput {
  name: string;
  datatype: Datatype;
  shape: number[];
  /** Bytes in the binary section (binary tensor extension); undefined: `data` holds the values. */
  binaryDataSize: number | undefined;
  data: unknown;
}

export interface RequestedOutput {
  name: string;
  binary: boolean;
}

export interface DeclaredRequest {
  id: string | undefined;
  inputs: DeclaredInput[];
  outputs: RequestedOutput[];
  /** `parameters.binary_data_output`: every output in binary unless it says otherwise. */
  binaryOutputsByDefault: boolean;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

export function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw badInput(`malformed JSON ${what}: ${(error as Error).message}`);
  }
}

function parametersOf(value: unknown, where: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isObject(value)) throw badInput(`${where}.parameters must be an object`);
  return value;
}

/** Reads the inference request object of the protocol, checking every field it relies on. */
export function declaredRequest(json: unknown): DeclaredRequest {
  if (!isObject(json)) throw badInput('the request body must be a JSON object with an "inputs" array');
  if (json.id !== undefined && typeof json.id !== 'string') throw badInput('"id" must be a string');
  const parameters = parametersOf(json.parameters, 'request');
  if (!Array.isArray(json.inputs) || json.inputs.length === 0) throw badInput('"inputs" must be a non-empty array');
  const inputs = json.inputs.map((raw, i): DeclaredInput => {
    const where = `inputs[${i}]`;
    if (!isObject(raw)) throw badInput(`${where} must be an object`);
    if (typeof raw.name !== 'string' || raw.name === '') throw badInput(`${where}.name must be a non-empty string`);
    if (!isDatatype(raw.datatype)) {
      throw badInput(`input "${raw.name}" has unsupported datatype ${JSON.stringify(raw.datatype)}`);
    }
    if (!Array.isArray(raw.shape) || !raw.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
      throw badInput(`input "${raw.name}": shape must be an array of non-negative integers`);
    }
    const size = parametersOf(raw.parameters, where).binary_data_size;
    if (size !== undefined && !(Number.isInteger(size) && (size as number) >= 0)) {
      throw badInput(`input "${raw.name}": binary_data_size must be a non-negative integer`);
    }
    if (size === undefined && raw.data === undefined) throw badInput(`input "${raw.name}" has neither "data" nor parameters.binary_data_size`);
    if (size !== undefined && raw.data !== undefined) throw badInput(`input "${raw.name}" has both "data" and parameters.binary_data_size`);
    return { name: raw.name, datatype: raw.datatype, shape: raw.shape as number[], binaryDataSize: size as number | undefined, data: raw.data };
  });
  if (json.outputs !== undefined && !Array.isArray(json.outputs)) throw badInput('"outputs" must be an array');
  const binaryOutputsByDefault = parameters.binary_data_output === true;
  const outputs = ((json.outputs as unknown[] | undefined) ?? []).map((raw, i): RequestedOutput => {
    if (!isObject(raw) || typeof raw.name !== 'string') throw badInput(`outputs[${i}] must be an object with a "name"`);
    const binary = parametersOf(raw.parameters, `outputs[${i}]`).binary_data;
    return { name: raw.name, binary: typeof binary === 'boolean' ? binary : binaryOutputsByDefault };
  });
  return { id: json.id as string | undefined, inputs, outputs, binaryOutputsByDefault };
}

/**
 * The values of `data`, row-major: flat, or nested at most once per dimension of the shape.
 * Iterative, because the nesting depth is the caller's to choose and the stack is not.
 */
function flattenData(input: DeclaredInput): unknown[] {
  if (!Array.isArray(input.data)) throw badInput(`input "${input.name}": "data" must be an array`);
  const maxDepth = Math.max(input.shape.length, 1);
  const values: unknown[] = [];
  const stack: Array<{ items: unknown[]; next: number }> = [{ items: input.data, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next === top.items.length) {
      stack.pop();
      continue;
    }
    const value = top.items[top.next++];
    if (!Array.isArray(value)) {
      values.push(value);
    } else if (stack.length === maxDepth) {
      throw badInput(`input "${input.name}": "data" is nested deeper than the shape [${input.shape.join(', ')}] has dimensions; send it flat or one level per dimension`);
    } else {
      stack.push({ items: value, next: 0 });
    }
  }
  return values;
}

/** Flattens nested `data` row-major and converts it to the datatype's typed array. */
export function tensorFromJson(input: DeclaredInput): Tensor {
  const type = DATATYPES[input.datatype];
  if (input.datatype === 'FP16') throw badInput(`input "${input.name}": send FP16 tensors in binary form (binary tensor extension)`);
  const values = flattenData(input);
  const expected = elementCount(input.shape);
  if (values.length !== expected) {
    throw badInput(`input "${input.name}" has ${values.length} elements but shape [${input.shape.join(', ')}] needs ${expected}`);
  }
  const data = type.create(expected);
  const wrong = (v: unknown, i: number, why = `not a valid ${input.datatype} value`) =>
    badInput(`input "${input.name}": ${JSON.stringify(v)} is ${why} (element [${indexOf(i, input.shape).join(', ')}])`);
  const [min, max] = type.range ?? [-Infinity, Infinity];
  const checkRange = (v: number, i: number) => {
    if (v < min || v > max) throw wrong(v, i, `outside the range of ${input.datatype} (${min}..${max})`);
  };
  if (input.datatype === 'BOOL') {
    values.forEach((v, i) => {
      if (typeof v !== 'boolean') throw wrong(v, i);
      data[i] = v ? 1 : 0;
    });
  } else if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    values.forEach((v, i) => {
      if (!Number.isInteger(v)) throw wrong(v, i);
      checkRange(v as number, i);
      data[i] = BigInt(v as number);
    });
  } else {
    const integral = type.range !== undefined;
    const numeric = data as Exclude<TensorArray, BigInt64Array | BigUint64Array>;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'number' || (integral && !Number.isInteger(v))) throw wrong(v, i);
      if (integral) checkRange(v, i);
      numeric[i] = v;
    }
  }
  return { name: input.name, datatype: input.datatype, shape: input.shape, data };
}

/** Output values for JSON: numbers (booleans for BOOL), flat and row-major. */
export function jsonValues(tensor: Tensor): Array<number | boolean> {
  if (tensor.datatype === 'BOOL') return Array.from(tensor.data as Uint8Array, (v) => v !== 0);
  if (tensor.datatype === 'FP16') return Array.from(tensor.data as Uint16Array, halfToNumber);
  return Array.from(tensor.data as ArrayLike<number | bigint>, Number);
}
