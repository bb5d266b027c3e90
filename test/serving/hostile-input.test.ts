import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { buildModel } from '../engine/onnx-builder';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';
import { expectValid } from './support/openapi';
import { get, imagePixels, png, post, registerModel, tensorValues } from './support/serving-fixtures';

/**
 * Hostile input on the data plane, generated: numbers that are not finite (or not in FP32),
 * nesting deeper than a tensor has dimensions, images that declare more pixels than they carry,
 * and requests Node's own parser refuses. Every case must answer the protocol's error shape with
 * a 4xx (or, for a variant's own fault, a 500 counted against it) and leave the gateway serving.
 */

const MODEL = 'fmnist';
const INFER = `/v2/models/${MODEL}/infer`;
const PIXELS = 784;
const RUNS = { numRuns: 40 };

/** A classifier whose logits are log(sum of pixels): NaN for finite inputs that sum below zero. */
function logOfSumModel(): Uint8Array {
  return buildModel({
    inputs: [{ name: 'input', shape: ['N', 1, 28, 28] }],
    outputs: [{ name: 'logits', shape: ['N', 10] }],
    initializers: [{ name: 'ones', shape: [PIXELS, 10], values: new Array(PIXELS * 10).fill(1) }],
    nodes: [
      { op: 'Flatten', inputs: ['input'], outputs: ['flat'], attributes: { axis: 1 } },
      { op: 'MatMul', inputs: ['flat', 'ones'], outputs: ['sums'] },
      { op: 'Log', inputs: ['sums'], outputs: ['logits'] },
    ],
  });
}

/** A JSON inference body with `data` written as given, so numbers JSON.stringify would change survive. */
function rawJsonBody(elements: string[], shape = [1, 1, 28, 28]): string {
  return `{"inputs":[{"name":"input","datatype":"FP32","shape":${JSON.stringify(shape)},"data":[${elements.join(',')}]}]}`;
}

function expectProtocolError(reply: { status: number; json: Record<string, unknown> }, status: number, message?: RegExp): void {
  expect(reply.status).toBe(status);
  expect(typeof reply.json.error).toBe('string');
  expectValid('inference_error_response', reply.json);
  if (message) expect(reply.json.error).toMatch(message);
}

/** Sends bytes on a fresh connection and returns what came back before the server closed it. */
function rawExchange(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.end(request));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

function parseRawResponse(raw: string): { status: number; contentType: string; body: unknown } {
  const [head, body] = raw.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const contentType = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '';
  return { status, contentType, body: JSON.parse(body) };
}

/** A PNG whose header declares `width` x `height` but whose data holds only `data`. */
function declaredPng(width: number, height: number, data: Buffer, interlaced = false): Buffer {
  const chunk = (type: string, payload: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(payload.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type, 'latin1'), payload])) >>> 0);
    return Buffer.concat([length, Buffer.from(type, 'latin1'), payload, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // gray
  ihdr[12] = interlaced ? 1 : 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(data)), chunk('IEND', Buffer.alloc(0))]);
}

/** A JPEG that is nothing but a start-of-frame segment declaring `width` x `height`. */
function declaredJpeg(width: number, height: number): Buffer {
  const sof = Buffer.from([0xff, 0xc0, 0x00, 0x0b, 0x08, 0, 0, 0, 0, 0x01, 0x01, 0x11, 0x00]);
  sof.writeUInt16BE(height, 5);
  sof.writeUInt16BE(width, 7);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), sof, Buffer.from([0xff, 0xd9])]);
}

async function errorCount(gateway: TestGateway, model: string, status: number): Promise<number> {
  const metrics = (await get(gateway, '/metrics')).text;
  const line = metrics.split('\n').find((l) => l.startsWith('gateway_inference_errors_total{') && l.includes(`model="${model}"`) && l.includes('role="primary"') && l.includes(`status="${status}"`) && l.includes('variant="fp32"'));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('hostile input on the data plane', () => {
  let gateway: TestGateway;
  let tmp: string;
  const image = tensorValues(imagePixels(3));

  beforeAll(async () => {
    gateway = await startTestGateway({ env: { MAX_IMAGE_PIXELS: String(1000 * 1000) } });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-'));
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await registerModel(gateway, 'encoder', 'tiny-embedder.onnx', 'RETRIEVAL');
    const logModel = path.join(tmp, 'log-of-sum.onnx');
    fs.writeFileSync(logModel, logOfSumModel());
    const result = await gateway.graphql(`mutation($input: RegisterModelInput!) { registerModel(input: $input) { variant { id } } }`, {
      input: { name: 'logsum', task: 'CLASSIFICATION', localPath: logModel, preprocessing: { height: 28, width: 28, channels: 1 } },
    });
    expect(result.errors).toBeUndefined();
  });
  afterAll(async () => {
    await gateway?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('numbers that are not finite in FP32 are refused with 400 naming the element', async () => {
    const overflowing = fc.constantFrom('1e39', '-1e39', '3.5e38', '-3.4028236e38', '1e400', '-1e999', '1.7976931348623157e308');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: PIXELS - 1 }), overflowing, async (at, literal) => {
        const elements = image.map(String);
        elements[at] = literal;
        const reply = await post(gateway, INFER, rawJsonBody(elements));
        expectProtocolError(reply, 400, new RegExp(`element \\[0, 0, ${Math.floor(at / 28)}, ${at % 28}\\] is -?Infinity.*finite`));
      }),
      RUNS,
    );
  });

  test('NaN and infinities in binary tensors are refused the same way', async () => {
    const nonFiniteBits = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 0x7fffff })).map(([negative, fraction]) => ((negative ? 0x80000000 : 0) | 0x7f800000 | fraction) >>> 0);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: PIXELS - 1 }), nonFiniteBits, async (at, bits) => {
        const data = Float32Array.from(image);
        new Uint32Array(data.buffer)[at] = bits;
        const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1, 28, 28], parameters: { binary_data_size: data.byteLength } }] }));
        const reply = await post(gateway, INFER, Buffer.concat([header, Buffer.from(data.buffer)]), { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) });
        expectProtocolError(reply, 400, new RegExp(`element \\[0, 0, ${Math.floor(at / 28)}, ${at % 28}\\] is (NaN|-?Infinity)`));
      }),
      RUNS,
    );
  });

  test('finite FP32 inputs are answered with finite numbers, never null', async () => {
    const finite = fc.float({ noNaN: true, noDefaultInfinity: true, min: Math.fround(-3e38), max: Math.fround(3e38) });
    await fc.assert(
      fc.asyncProperty(fc.array(finite, { minLength: PIXELS, maxLength: PIXELS }), async (values) => {
        const reply = await post(gateway, INFER, rawJsonBody(values.map((v) => (Object.is(v, -0) ? '0' : String(v)))));
        if (reply.status === 200) {
          expectValid('inference_response', reply.json);
          const [output] = reply.json.outputs as Array<{ data: unknown[] }>;
          expect(output.data.every((v) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
        } else {
          // Huge but finite inputs can overflow inside the model: the variant's fault, not a null.
          expectProtocolError(reply, 500, /non-finite output from finite inputs/);
        }
      }),
      { numRuns: 15 },
    );
  });

  test('integers outside their datatype are refused, not wrapped', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(['INT8', 128], ['INT8', -129], ['UINT8', -1], ['UINT8', 256], ['INT32', 2 ** 31], ['UINT32', -1], ['UINT64', -5]), async ([datatype, value]) => {
        const reply = await post(gateway, INFER, { inputs: [{ name: 'input', datatype, shape: [1], data: [value] }] });
        expectProtocolError(reply, 400, new RegExp(`${value} is outside the range of ${datatype}`));
      }),
      { numRuns: 7 },
    );
  });

  test('a variant that turns finite inputs into NaN answers 500 and the error counts against it', async () => {
    const before = await errorCount(gateway, 'logsum', 500);
    let failures = 0;
    await fc.assert(
      fc.asyncProperty(fc.float({ noNaN: true, noDefaultInfinity: true, min: -1000, max: 1000 }), async (level) => {
        const reply = await post(gateway, '/v2/models/logsum/infer', rawJsonBody(new Array(PIXELS).fill(String(level))));
        // log of a negative sum is NaN, log(0) is -Infinity: both the variant's fault, not the caller's.
        if (Math.fround(level) > 0) {
          expect(reply.status).toBe(200);
          const [output] = reply.json.outputs as Array<{ data: unknown[] }>;
          expect(output.data.every((v) => typeof v === 'number' && Number.isFinite(v))).toBe(true);
        } else {
          failures++;
          expectProtocolError(reply, 500, /variant logsum\/fp32 produced a non-finite output from finite inputs: "logits" element \[0, \d\] is (NaN|-Infinity)/);
        }
      }),
      { numRuns: 30, examples: [[-1], [0], [1]] },
    );
    expect(failures).toBeGreaterThan(0);
    expect(await errorCount(gateway, 'logsum', 500)).toBe(before + failures);
  });

  test('data nested deeper than the shape has dimensions is refused with 400 at any depth', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 5, max: 500_000 }), async (depth) => {
        const data = `${'['.repeat(depth - 1)}0${']'.repeat(depth - 1)}`;
        const reply = await post(gateway, INFER, `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,1,28,28],"data":[${data}]}]}`);
        expectProtocolError(reply, 400, /nested deeper than the shape \[1, 1, 28, 28\] has dimensions/);
      }),
      { numRuns: 20, examples: [[5], [10_001], [200_000]] },
    );
    const rows = [[Array.from({ length: 28 }, (_, r) => image.slice(r * 28, r * 28 + 28))]];
    expect((await post(gateway, INFER, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1, 28, 28], data: rows }] })).status).toBe(200);
  });

  test('images that declare more pixels than allowed are refused undecoded: 413 over MAX_IMAGE_PIXELS, 400 otherwise', async () => {
    const side = fc.integer({ min: 1, max: 65535 });
    await fc.assert(
      fc.asyncProperty(side, side, fc.constantFrom('png', 'interlaced', 'jpeg'), fc.constantFrom('classify', 'gallery'), async (width, height, kind, route) => {
        const file = kind === 'jpeg' ? declaredJpeg(width, height) : declaredPng(width, height, Buffer.alloc(64), kind === 'interlaced');
        const reply = route === 'classify'
          ? await post(gateway, `/v2/models/${MODEL}/classify`, file, { 'content-type': 'image/png' })
          : await post(gateway, '/v2/models/encoder/gallery', { items: [{ id: 'x', image: file.toString('base64') }] });
        if (width * height > 1000 * 1000) {
          expectProtocolError(reply, 413, /declares \d+x\d+ pixels, more than the limit of 1000000 \(MAX_IMAGE_PIXELS\)/);
        } else {
          expect(reply.status).toBe(400);
          expect(typeof reply.json.error).toBe('string');
        }
      }),
      { numRuns: 60, examples: [[30000, 30000, 'png', 'classify'], [65535, 65535, 'jpeg', 'classify'], [28, 28, 'interlaced', 'classify']] },
    );
  });

  test('an interlaced PNG whose data inflates past its declared size is refused', async () => {
    const bomb = declaredPng(28, 28, Buffer.alloc(64 * 1024 * 1024), true);
    expect(bomb.length).toBeLessThan(100_000);
    const reply = await post(gateway, `/v2/models/${MODEL}/classify`, bomb, { 'content-type': 'image/png' });
    expectProtocolError(reply, 400, /inflates past the declared size/);
    expect((await post(gateway, `/v2/models/${MODEL}/classify`, png(imagePixels(1)), { 'content-type': 'image/png' })).status).toBe(200);
  });

  test("what Node's HTTP parser refuses answers the protocol's error shape", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 17 * 1024, max: 80 * 1024 }), fc.boolean(), async (length, inHeader) => {
        const request = inHeader
          ? `GET /v2 HTTP/1.1\r\nHost: x\r\nX-Long: ${'a'.repeat(length)}\r\n\r\n`
          : `POST ${INFER}?${'q'.repeat(length)} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`;
        const answer = parseRawResponse(await rawExchange(gateway.url, request));
        expect(answer.status).toBe(431);
        expect(answer.contentType).toMatch(/application\/json/);
        expect(answer.body).toEqual({ error: expect.stringMatching(/larger than the limit of \d+ bytes/) });
      }),
      { numRuns: 10 },
    );
    const junk = fc.stringMatching(/^[A-Za-z0-9 /%.:-]{1,60}$/).filter((line) => !/^(GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH) \S+ HTTP\/1\.[01]$/.test(line));
    await fc.assert(
      fc.asyncProperty(junk, async (line) => {
        const raw = await rawExchange(gateway.url, `${line}\r\nHost: x\r\n\r\n`);
        const answer = parseRawResponse(raw);
        expect(answer.status).toBeGreaterThanOrEqual(400);
        expect(answer.status).toBeLessThan(500);
        expect(answer.body).toEqual({ error: expect.any(String) });
      }),
      { numRuns: 25 },
    );
    const upgrade = parseRawResponse(await rawExchange(gateway.url, 'GET /v2 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
    expect(upgrade).toMatchObject({ status: 404, body: { error: expect.stringMatching(/subscriptions are at \/graphql/) } });
  });

  test('after all of it the gateway still serves', async () => {
    expect((await get(gateway, '/v2/health/ready')).status).toBe(200);
    const reply = await post(gateway, INFER, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1, 28, 28], data: image }] }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(reply.status).toBe(200);
  });
});
