import zlib from 'node:zlib';
import fc from 'fast-check';
import { ADMIN_TOKEN, startTestGateway, type TestGateway } from '../support/gateway-harness';
import { expectValid } from './support/openapi';
import { addVariant, get, imagePixels, png, post, registerModel, tensorValues, type Reply } from './support/serving-fixtures';

/**
 * Generated requests of every shape the protocol's parsers see (JSON bodies, binary tensors, raw
 * images, compressed bodies) and generated GraphQL mutation inputs. Where hostile-input.test.ts
 * generates known classes (non-finite numbers, deep nesting, image bombs), this throws structure
 * at the parsers: every case is a 4xx in the protocol's error shape, never a 5xx, and nothing
 * stored changes.
 */

const MODEL = 'fmnist';
const RUNS = { numRuns: 120 };

/** Any 4xx with exactly `{ "error": "<message>" }` as the protocol wants. */
function expectRefused(reply: Reply): void {
  expect([reply.status, reply.status >= 400 && reply.status < 500]).toEqual([reply.status, true]);
  expect(Object.keys(reply.json)).toEqual(['error']);
  expect(typeof reply.json.error).toBe('string');
  expectValid('inference_error_response', reply.json);
}

/** Everything a refused request must leave as it was: registry, policies, galleries, tokens (each change is audited). */
async function storedState(gateway: TestGateway): Promise<unknown> {
  const { registry, audit, serving } = gateway.services;
  const models = await Promise.all((await registry.listModels()).map(async (model) => ({ model, variants: await registry.listVariants(model.id), policy: (await serving.catalog.read(model.name)).policyVersion })));
  return { models, audit: (await audit.list({ limit: 1 }))[0]?.id ?? 0 };
}

const DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'];

/** A tensor object near the real one: each field right, wrong, or missing, so the parser's every branch is reached. */
const tensor = fc.record(
  {
    name: fc.oneof(fc.constant('input'), fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null)),
    datatype: fc.oneof(fc.constantFrom(...DATATYPES), fc.string({ maxLength: 6 }), fc.integer()),
    shape: fc.oneof(
      fc.array(fc.integer({ min: -3, max: 40 }), { maxLength: 5 }),
      fc.constant([1, 1, 28, 28]),
      fc.array(fc.oneof(fc.double(), fc.string({ maxLength: 3 }), fc.constant(2 ** 53)), { maxLength: 4 }),
      fc.jsonValue({ maxDepth: 1 }),
    ),
    data: fc.oneof(
      fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 20 }),
      fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 10 }),
      fc.jsonValue({ maxDepth: 2 }),
    ),
    parameters: fc.oneof(fc.constant(undefined), fc.record({ binary_data_size: fc.oneof(fc.integer({ min: -10, max: 5000 }), fc.string({ maxLength: 4 })) }), fc.jsonValue({ maxDepth: 1 })),
  },
  { requiredKeys: [] },
);

const inferenceRequest = fc.record(
  {
    id: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
    inputs: fc.oneof(fc.array(tensor, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
    outputs: fc.oneof(fc.array(fc.record({ name: fc.oneof(fc.constant('logits'), fc.string({ maxLength: 6 })), parameters: fc.jsonValue({ maxDepth: 1 }) }, { requiredKeys: [] }), { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
    parameters: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);

describe('generated requests to the protocol parsers', () => {
  let gateway: TestGateway;
  let before: unknown;
  const image = png(imagePixels(1));

  beforeAll(async () => {
    gateway = await startTestGateway();
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
    await addVariant(gateway, MODEL, 'w4a4', 'tiny-classifier-q.onnx');
    await registerModel(gateway, 'encoder', 'tiny-embedder.onnx', 'RETRIEVAL');
    before = await storedState(gateway);
  });
  afterAll(() => gateway?.stop());

  test('JSON inference bodies: structure near and far from a valid request', async () => {
    await fc.assert(
      fc.asyncProperty(inferenceRequest, fc.constantFrom(`/v2/models/${MODEL}/infer`, `/v2/models/${MODEL}/versions/w4a4/infer`), async (body, path) => {
        expectRefused(await post(gateway, path, JSON.stringify(body)));
      }),
      RUNS,
    );
  });

  test('bodies that are not JSON objects, or not JSON at all', async () => {
    const notAnObject = fc.oneof(fc.jsonValue().filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)).map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 }), fc.constant('{"inputs": ['));
    await fc.assert(
      fc.asyncProperty(notAnObject, async (text) => {
        expectRefused(await post(gateway, `/v2/models/${MODEL}/infer`, text));
      }),
      RUNS,
    );
  });

  test('binary tensor bodies: any header length, any JSON header, any bytes after it', async () => {
    const binary = fc.tuple(
      fc.oneof(inferenceRequest.map((r) => JSON.stringify(r)), fc.string({ maxLength: 50 })),
      fc.uint8Array({ maxLength: 4000 }),
      fc.oneof(fc.constant('exact'), fc.integer({ min: -5, max: 5000 }).map(String), fc.string({ maxLength: 5 })),
    );
    await fc.assert(
      fc.asyncProperty(binary, async ([header, bytes, length]) => {
        const headerBytes = Buffer.from(header);
        const headerLength = length === 'exact' ? String(headerBytes.length) : length;
        const reply = await post(gateway, `/v2/models/${MODEL}/infer`, Buffer.concat([headerBytes, bytes]), { 'content-type': 'application/octet-stream', 'inference-header-content-length': headerLength });
        expectRefused(reply);
      }),
      RUNS,
    );
  });

  test('raw images: arbitrary bytes, and real PNGs cut short or with bytes flipped', async () => {
    const damaged = fc.tuple(fc.integer({ min: 0, max: image.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.boolean()).map(([at, value, truncate]) => {
      if (truncate) return image.subarray(0, at);
      const copy = Buffer.from(image);
      // Flipping a byte of the pixel data only can still decode: make it the header's or a chunk length's.
      copy[at % 40] ^= value || 1;
      return copy;
    });
    const bytes = fc.oneof(fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)), damaged);
    await fc.assert(
      fc.asyncProperty(bytes, fc.constantFrom(`/v2/models/${MODEL}/classify`, '/v2/models/encoder/search'), async (body, path) => {
        const reply = await post(gateway, path, body, { 'content-type': 'application/octet-stream' });
        // A damaged PNG may still be a readable 28x28 image (the flip hit a byte the decoder tolerates): then it is an answer.
        if (reply.status === 200) return;
        expectRefused(reply);
      }),
      RUNS,
    );
  });

  test('compressed bodies: an encoding the body is not, or a stream that is cut short', async () => {
    const valid = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1, 28, 28], data: tensorValues(imagePixels(2)) }] });
    const compressed = { gzip: zlib.gzipSync(valid), deflate: zlib.deflateSync(valid), br: zlib.brotliCompressSync(valid) };
    const body = fc.tuple(fc.constantFrom<keyof typeof compressed>('gzip', 'deflate', 'br'), fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => ({ bytes: Buffer.from(b), cut: undefined })), fc.nat().map((n) => ({ bytes: undefined, cut: n }))));
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom('gzip', 'deflate', 'br', 'compress', 'gzip, br', ''), async ([format, { bytes, cut }], encoding) => {
        const full = compressed[format];
        const payload = bytes ?? full.subarray(0, (cut ?? 0) % (full.length - 1));
        const reply = await post(gateway, `/v2/models/${MODEL}/infer`, payload, encoding ? { 'content-encoding': encoding } : {});
        expectRefused(reply);
      }),
      RUNS,
    );
  });

  test('generated GraphQL mutation inputs are refused with a code, no stack trace, and change nothing', async () => {
    const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
    const registerInput = fc.record(
      {
        name: fc.oneof(fc.string({ maxLength: 70 }), scalar),
        task: fc.oneof(fc.constantFrom('CLASSIFICATION', 'RETRIEVAL', 'classification', 'OTHER'), scalar),
        labels: fc.oneof(fc.array(fc.string({ maxLength: 3 }), { maxLength: 12 }), scalar),
        preprocessing: fc.oneof(fc.record({ height: scalar, width: scalar, channels: scalar, mean: fc.array(fc.double(), { maxLength: 4 }) }, { requiredKeys: [] }), scalar),
        localPath: fc.oneof(fc.constantFrom('/dev/zero', '/proc/self/environ', '../../etc/passwd', '/tmp'), fc.string({ maxLength: 20 })),
        artifactSha256: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), fc.string({ maxLength: 10 })),
      },
      { requiredKeys: [] },
    );
    const policy = fc.record(
      {
        routes: fc.oneof(fc.array(fc.record({ variant: fc.oneof(fc.constantFrom('fp32', 'w4a4', 'nope'), scalar), weight: fc.oneof(fc.integer({ min: -5, max: 200 }), scalar) }, { requiredKeys: [] }), { maxLength: 4 }), scalar),
        shadows: fc.oneof(fc.array(fc.record({ variant: fc.oneof(fc.constantFrom('fp32', 'w4a4'), scalar), mirrorPercent: fc.oneof(fc.integer({ min: -5, max: 200 }), scalar) }, { requiredKeys: [] }), { maxLength: 3 }), scalar),
      },
      { requiredKeys: [] },
    );
    // Each is invalid by construction: an unknown model or variant, an input that cannot be a model, a policy that is not one.
    const mutation = fc.oneof(
      registerInput.map((input) => ({ query: 'mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }', variables: { input } })),
      fc.record({ model: fc.oneof(fc.constant(MODEL), fc.string({ maxLength: 8 })), policy, expectedVersion: fc.oneof(fc.integer({ min: -3, max: 3 }), scalar) }).map((variables) => ({
        query: 'mutation($model: String!, $policy: TrafficPolicyInput!, $expectedVersion: Int) { setTrafficPolicy(model: $model, policy: $policy, expectedVersion: $expectedVersion) { version } }',
        variables,
      })),
      fc.record({ model: fc.oneof(fc.constant(MODEL), fc.string({ maxLength: 8 })), tag: fc.oneof(fc.constant('w4a4'), fc.string({ maxLength: 70 })), artifactSha256: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), scalar), precision: scalar, method: scalar }, { requiredKeys: [] }).map((input) => ({
        query: 'mutation($input: AddVariantInput!) { addVariant(input: $input) { id } }',
        variables: { input },
      })),
      // Labels for a model that does not exist, or a list that cannot be a model's labels (10 classes: duplicates, blanks, a wrong count).
      fc.oneof(
        fc.record({ model: fc.string({ maxLength: 8 }).filter((m) => m !== MODEL && m !== 'encoder'), labels: fc.array(fc.string({ maxLength: 4 }), { maxLength: 12 }) }),
        fc.record({ model: fc.constant(MODEL), labels: fc.oneof(fc.array(fc.string({ maxLength: 4 }), { maxLength: 9 }), fc.constant(Array(10).fill('same')), fc.constant([...Array(9).fill(0).map((_, i) => `c${i}`), ' '])) }),
      ).map((variables) => ({ query: 'mutation($model: String!, $labels: [String!]!) { setModelLabels(model: $model, labels: $labels) { name } }', variables })),
      fc.oneof(fc.uuid(), fc.string({ maxLength: 40 }), scalar).chain((id) => fc.constantFrom('retireVariant', 'revokeApiToken').map((field) => ({ query: `mutation($id: ID!) { ${field}(id: $id) { id } }`, variables: { id } }))),
    );
    await fc.assert(
      fc.asyncProperty(mutation, async ({ query, variables }) => {
        const result = await gateway.graphql(query, variables as Record<string, unknown>);
        expect([result.status, result.status < 500]).toEqual([result.status, true]);
        expect(result.data == null || Object.values(result.data).every((v) => v === null)).toBe(true);
        expect(result.errors?.length).toBeGreaterThan(0);
        for (const error of result.errors!) {
          expect([error.message, error.extensions?.code]).toEqual([error.message, expect.stringMatching(/^(BAD_USER_INPUT|INVALID_MODEL|NOT_FOUND|CONFLICT|PAYLOAD_TOO_LARGE|GRAPHQL_VALIDATION_FAILED|QUERY_TOO_COMPLEX)$/)]);
          expect(error).not.toHaveProperty('extensions.stacktrace');
        }
      }),
      RUNS,
    );
  });

  test('after all of it nothing stored changed and the gateway still serves', async () => {
    expect(await storedState(gateway)).toEqual(before);
    const reply = await post(gateway, `/v2/models/${MODEL}/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1, 28, 28], data: tensorValues(imagePixels(3)) }] }, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(reply.status).toBe(200);
    expect((await get(gateway, '/v2/health/ready')).status).toBe(200);
  });
});
