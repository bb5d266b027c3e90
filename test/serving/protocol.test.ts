import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import * as ort from 'onnxruntime-node';
import { FIXTURES, startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { expectValid, specValidationSkipped } from './support/openapi';
import { addVariant, get, imagePixels, inferenceBody, LABELS, png, post, registerModel, tensorValues } from './support/serving-fixtures';

const MODEL = 'fmnist';
const INFER = `/v2/models/${MODEL}/infer`;

/** The classifier's logits for the rows, straight from onnxruntime: what the gateway must answer. */
async function referenceLogits(rows: number[][], file = 'tiny-classifier.onnx'): Promise<number[]> {
  const session = await ort.InferenceSession.create(path.join(FIXTURES, file));
  try {
    const input = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, 1, 28, 28]);
    const { logits } = await session.run({ input });
    return Array.from(logits.data as Float32Array);
  } finally {
    await session.release();
  }
}

function binaryRequest(header: Record<string, unknown>, ...parts: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header));
  return {
    body: Buffer.concat([json, ...parts]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.length) },
  };
}

const floatBytes = (values: number[]) => Buffer.from(Float32Array.from(values).buffer);

function protocolSuite(dialect: Dialect) {
  let gateway: TestGateway;
  const rows = [tensorValues(imagePixels(1)), tensorValues(imagePixels(2))];
  let expected: number[];

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await addVariant(gateway, MODEL, 'broken', 'fails-at-run.onnx');
    expected = await referenceLogits(rows);
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('server and model metadata follow the protocol', async () => {
    const server = await get(gateway, '/v2');
    expect(server.status).toBe(200);
    expectValid('metadata_server_response', server.json);
    expect(server.json.extensions).toEqual(expect.arrayContaining(['binary_tensor_data']));

    const model = await get(gateway, `/v2/models/${MODEL}`);
    expect(model.status).toBe(200);
    expectValid('metadata_model_response', model.json);
    expect(model.json).toMatchObject({
      name: MODEL,
      versions: ['fp32', 'broken'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] }],
      outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }],
    });
    const version = await get(gateway, `/v2/models/${MODEL}/versions/fp32`);
    expect(version.json).toMatchObject({ name: MODEL, properties: { precision: 'FP32' } });

    expect((await get(gateway, `/v2/models/${MODEL}/ready`)).json).toEqual({ name: MODEL, version: 'fp32', ready: true });
    expect((await get(gateway, `/v2/models/${MODEL}/versions/fp32/ready`)).status).toBe(200);
    expect((await get(gateway, '/v2/health/live')).status).toBe(200);
  });

  test('JSON tensors, flat and nested, answer what onnxruntime computes', async () => {
    const request = { id: 'req-1', ...inferenceBody(rows) };
    expectValid('inference_request', request);
    const flat = await post(gateway, INFER, request, { 'x-request-id': 'abc-123' });
    expect(flat.status).toBe(200);
    expectValid('inference_response', flat.json);
    expect(flat.headers.get('x-variant')).toBe('fp32');
    expect(flat.headers.get('x-request-id')).toBe('abc-123');
    expect(flat.json).toMatchObject({ model_name: MODEL, model_version: 'fp32', id: 'req-1' });
    const [output] = flat.json.outputs as Array<{ name: string; datatype: string; shape: number[]; data: number[] }>;
    expect(output).toMatchObject({ name: 'logits', datatype: 'FP32', shape: [2, 10] });
    output.data.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));

    const nested = rows.map((row) => [Array.from({ length: 28 }, (_, y) => row.slice(y * 28, (y + 1) * 28))]);
    const nestedReply = await post(gateway, `/v2/models/${MODEL}/versions/fp32/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 1, 28, 28], data: nested }] });
    expect(nestedReply.status).toBe(200);
    expect((nestedReply.json.outputs as Array<{ data: number[] }>)[0].data).toEqual(output.data);
    // Without a request id in the body, the response id is the x-request-id.
    expect(nestedReply.json.id).toBe(nestedReply.headers.get('x-request-id'));
  });

  test('binary tensor extension: binary inputs, binary outputs, and raw requests', async () => {
    const header = {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 1, 28, 28], parameters: { binary_data_size: 2 * 784 * 4 } }],
      outputs: [{ name: 'logits', parameters: { binary_data: true } }],
    };
    expectValid('inference_request', header);
    const { body, headers } = binaryRequest(header, floatBytes(rows.flat()));
    const reply = await post(gateway, INFER, body, headers);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toBe('application/octet-stream');
    const headerLength = Number(reply.headers.get('inference-header-content-length'));
    const json = JSON.parse(reply.raw.subarray(0, headerLength).toString('utf8'));
    expectValid('inference_response', json);
    expect(json.outputs[0]).toEqual({ name: 'logits', datatype: 'FP32', shape: [2, 10], parameters: { binary_data_size: 80 } });
    const logits = new Float32Array(reply.raw.subarray(headerLength).buffer.slice(reply.raw.byteOffset + headerLength, reply.raw.byteOffset + reply.raw.length));
    Array.from(logits).forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));

    // JSON input, every output binary through the request-level parameter.
    const mixed = await post(gateway, INFER, { ...inferenceBody(rows), parameters: { binary_data_output: true } });
    expect(Number(mixed.headers.get('inference-header-content-length'))).toBeGreaterThan(0);
    expect(mixed.raw.length - Number(mixed.headers.get('inference-header-content-length'))).toBe(80);

    // Raw: the whole body is the single input; the batch size follows from its length.
    const raw = await post(gateway, INFER, floatBytes(rows.flat()), { 'content-type': 'application/octet-stream', 'inference-header-content-length': '0' });
    expect(raw.status).toBe(200);
    expect((raw.json.outputs as Array<{ shape: number[]; data: number[] }>)[0].shape).toEqual([2, 10]);
    (raw.json.outputs as Array<{ data: number[] }>)[0].data.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
  });

  test('/classify takes an image file and answers labels with probabilities', async () => {
    const pixels = imagePixels(1);
    const reply = await post(gateway, `/v2/models/${MODEL}/classify?top=3`, png(pixels), { 'content-type': 'image/png' });
    expect(reply.status).toBe(200);
    const predictions = reply.json.predictions as Array<{ label: string; probability: number }>;
    expect(predictions).toHaveLength(3);
    const logits = expected.slice(0, 10);
    const max = Math.max(...logits);
    const exp = logits.map((v) => Math.exp(v - max));
    const sum = exp.reduce((a, b) => a + b, 0);
    const best = exp.indexOf(Math.max(...exp));
    expect(predictions[0].label).toBe(LABELS[best]);
    expect(predictions[0].probability).toBeCloseTo(exp[best] / sum, 4);
    expect(predictions[0].probability).toBeGreaterThanOrEqual(predictions[1].probability);
    expect(reply.json).toMatchObject({ model_name: MODEL, model_version: 'fp32', id: reply.headers.get('x-request-id') });
  });

  describe('bad input: a status, {"error"}, and a counted failure', () => {
    const good = inferenceBody([tensorValues(imagePixels(3))]);
    const input = (changes: Record<string, unknown>) => ({ inputs: [{ ...(good.inputs as object[])[0], ...changes }] });
    const sized = binaryRequest({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1, 28, 28], parameters: { binary_data_size: 784 * 4 } }] }, floatBytes(new Array(784).fill(0)));
    const cases: Array<[string, string, Buffer | string | Record<string, unknown>, Record<string, string>, number, RegExp]> = [
      ['wrong input name', INFER, input({ name: 'pixels' }), {}, 400, /unknown input "pixels"; the model takes "input"/],
      ['wrong shape', INFER, input({ shape: [1, 1, 784] , data: new Array(784).fill(0) }), {}, 400, /shape \[1, 1, 784\]; the model expects \[-1, 1, 28, 28\]/],
      ['wrong datatype', INFER, input({ datatype: 'INT32', data: new Array(784).fill(0) }), {}, 400, /datatype INT32; the model expects FP32/],
      ['unknown datatype', INFER, input({ datatype: 'FP8' }), {}, 400, /unsupported datatype "FP8"/],
      ['element count off', INFER, input({ data: new Array(783).fill(0) }), {}, 400, /783 elements but shape \[1, 1, 28, 28\] needs 784/],
      ['non-numeric data', INFER, input({ data: ['a', ...new Array(783).fill(0)] }), {}, 400, /"a" is not a valid FP32 value/],
      ['missing input', INFER, { inputs: [] }, {}, 400, /"inputs" must be a non-empty array/],
      ['unknown output', INFER, { ...good, outputs: [{ name: 'probs' }] }, {}, 400, /unknown output "probs"/],
      ['malformed JSON', INFER, '{"inputs": [', {}, 400, /malformed JSON inference request/],
      ['binary sizes that do not add up', INFER, sized.body.subarray(0, sized.body.length - 4), sized.headers, 400, /declare 3136 bytes of binary data .* carries 3132/],
      ['header length past the body', INFER, sized.body, { ...sized.headers, 'inference-header-content-length': '999999' }, 400, /Inference-Header-Content-Length is "999999"/],
      ['raw body not a whole row', INFER, Buffer.alloc(100), { 'content-type': 'application/octet-stream', 'inference-header-content-length': '0' }, 400, /not a whole number of FP32 rows/],
      ['unsupported content encoding', INFER, good, { 'content-encoding': 'compress' }, 400, /unsupported Content-Encoding "compress"/],
      ['unknown model', '/v2/models/nope/infer', good, {}, 404, /no model named "nope"/],
      ['unknown variant', `/v2/models/${MODEL}/versions/v9/infer`, good, {}, 404, /has no variant "v9"/],
      ['classify with a non-image', `/v2/models/${MODEL}/classify`, 'not an image', { 'content-type': 'image/png' }, 400, /not a PNG or JPEG/],
      ['classify with the wrong image size', `/v2/models/${MODEL}/classify`, png(imagePixels(1), 32, 32), { 'content-type': 'image/png' }, 400, /32x32 .* expects 28x28/],
      ['a variant whose session fails', `/v2/models/${MODEL}/versions/broken/infer`, good, {}, 500, /broken failed to run: .*Gather/],
    ];

    test.each(cases)('%s', async (_name, urlPath, body, headers, status, message) => {
      const reply = await post(gateway, urlPath, body, headers);
      expect(reply.status).toBe(status);
      expectValid('inference_error_response', reply.json);
      expect(reply.json.error).toMatch(message);
    });

    test('the others keep serving after a variant failed', async () => {
      expect((await post(gateway, INFER, good)).status).toBe(200);
      expect((await post(gateway, `/v2/models/${MODEL}/versions/fp32/infer`, good)).status).toBe(200);
    });

    test('every failure is counted: errors by status, and requests include them', async () => {
      const metrics = (await get(gateway, '/metrics', null)).text;
      const sample = (pattern: string) => {
        const line = metrics.split('\n').find((l) => l.startsWith(pattern));
        return line ? Number(line.split(' ').pop()) : 0;
      };
      const sum = (prefix: string, status: string) =>
        metrics.split('\n').filter((l) => l.startsWith(prefix) && l.includes(`status="${status}"`)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
      const badRequests = cases.filter(([, urlPath, , , status]) => status === 400 && urlPath.includes(`/${MODEL}/`)).length;
      // Refused while decoding: counted under the model with variant "-"; after routing: under the variant.
      expect(sum('gateway_inference_errors_total{model="fmnist",', '400')).toBe(badRequests);
      expect(sample('gateway_inference_errors_total{model="fmnist",variant="fp32",role="primary",status="400"}')).toBe(4);
      expect(sample('gateway_inference_errors_total{model="fmnist",variant="broken",role="primary",status="500"}')).toBe(1);
      expect(sample('gateway_inference_errors_total{model="-",variant="-",role="primary",status="404"}')).toBe(1);
      const requests = sample('gateway_inference_requests_total{model="fmnist",variant="fp32",role="primary"}');
      const errors = metrics.split('\n').filter((l) => l.startsWith('gateway_inference_errors_total{model="fmnist",variant="fp32"')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
      const latency = sample('gateway_inference_latency_seconds_count{model="fmnist",variant="fp32",role="primary"}');
      expect(requests - errors).toBe(latency);
      expect(metrics).toMatch(/gateway_ort_compute_seconds_bucket\{le="0.0005",model="fmnist",variant="fp32"\}/);
      expect(metrics).toContain('gateway_queue_depth{model="fmnist",variant="fp32",role="primary"} 0');
    });
  });

  test('compressed bodies (gzip, deflate) are inflated before decoding', async () => {
    const body = Buffer.from(JSON.stringify(inferenceBody(rows)));
    for (const [encoding, compress] of [['gzip', zlib.gzipSync], ['deflate', zlib.deflateSync]] as const) {
      const reply = await post(gateway, INFER, compress(body), { 'content-encoding': encoding });
      expect(reply.status).toBe(200);
      const logits = (reply.json.outputs as Array<{ data: number[] }>)[0].data;
      logits.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    }
  });

  test('a body over the limit is refused with 413', async () => {
    const small = await startTestGateway({ dialect, env: { MAX_REQUEST_BYTES: '1kb' } });
    try {
      await registerModel(small, MODEL, 'tiny-classifier.onnx');
      const reply = await post(small, INFER, inferenceBody([tensorValues(imagePixels(1))]));
      expect(reply.status).toBe(413);
      expect(reply.json.error).toMatch(/larger than the limit of 1024 bytes/);
      // Small on the wire, too large once inflated: the limit applies to what is decoded.
      const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024, 0x20));
      expect(bomb.length).toBeLessThan(1024);
      const inflated = await post(small, INFER, bomb, { 'content-encoding': 'gzip' });
      expect(inflated.status).toBe(413);
      expect(inflated.json.error).toMatch(/larger than the limit of 1024 bytes/);
    } finally {
      await small.stop();
    }
  });

  test('a variant whose file cannot load answers 500 and the model keeps serving', async () => {
    const variantId = await addVariant(gateway, MODEL, 'corrupt', 'tiny-classifier-q.onnx');
    const variant = await gateway.services.registry.getVariant(variantId);
    // Damage the stored file before the first request loads it, as a bad disk would.
    const file = await gateway.services.artifacts.localPath(variant.artifactSha256);
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, 'garbage');
    const reply = await post(gateway, `/v2/models/${MODEL}/versions/corrupt/infer`, inferenceBody([tensorValues(imagePixels(1))]));
    expect(reply.status).toBe(500);
    expect(reply.json.error).toMatch(/corrupt: onnxruntime could not load the model/);
    expect((await post(gateway, INFER, inferenceBody([tensorValues(imagePixels(1))]))).status).toBe(200);
  });

  test('data-plane routes need the inference (or admin) role', async () => {
    const tokens = await gateway.graphql<{ viewer: { token: string }; serving: { token: string } }>(
      `mutation { viewer: createApiToken(name: "v", role: viewer) { token } serving: createApiToken(name: "s", role: inference) { token } }`,
    );
    const body = inferenceBody([tensorValues(imagePixels(1))]);
    expect((await post(gateway, INFER, body, { authorization: '' })).status).toBe(401);
    expect((await post(gateway, INFER, body, { authorization: `Bearer ${tokens.data!.viewer.token}` })).status).toBe(403);
    expect((await post(gateway, INFER, body, { authorization: `Bearer ${tokens.data!.serving.token}` })).status).toBe(200);
  });
}

if (specValidationSkipped) test.skip(specValidationSkipped, () => undefined);
describe('inference protocol (SQLite)', () => protocolSuite('sqlite'));
describeWithPostgres('inference protocol (PostgreSQL)', () => protocolSuite('postgres'));
