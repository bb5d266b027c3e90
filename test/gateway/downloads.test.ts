import fs from 'node:fs';
import path from 'node:path';
import { parseModelCard } from '../../workers/common/model-card';
import { ADMIN_TOKEN, FIXTURES, startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';

/** A variant's ONNX file (admins) and its model card (viewers) come back out over HTTP. */

const DEMO_MODEL = path.resolve(__dirname, '..', '..', 'deploy', 'demo', 'models', 'vit-fmnist-cls-op17.onnx');

function downloadSuite(dialect: Dialect) {
  let gateway: TestGateway;
  let tokens: { viewer: string; inference: string };
  let variant: { id: string; artifactSha256: string };
  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
    const created = await gateway.graphql<{ viewer: { token: string }; inference: { token: string } }>(
      `mutation { viewer: createApiToken(name: "dl viewer", role: viewer) { token } inference: createApiToken(name: "dl serving", role: inference) { token } }`,
    );
    tokens = { viewer: created.data!.viewer.token, inference: created.data!.inference.token };
    const registered = await gateway.graphql<{ registerModel: { variant: { id: string; artifactSha256: string } } }>(
      `mutation($input: RegisterModelInput!) { registerModel(input: $input) { variant { id artifactSha256 } } }`,
      { input: { name: 'demo', localPath: DEMO_MODEL } },
    );
    expect(registered.errors).toBeUndefined();
    variant = registered.data!.registerModel.variant;
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  const get = (urlPath: string, token: string | null = ADMIN_TOKEN) =>
    fetch(`${gateway.url}${urlPath}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  test("GET /v1/artifacts/{sha256} streams a variant's ONNX file to admins", async () => {
    const response = await get(`/v1/artifacts/${variant.artifactSha256}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/onnx');
    expect(response.headers.get('content-disposition')).toBe(`attachment; filename="${variant.artifactSha256}.onnx"`);
    const bytes = Buffer.from(await response.arrayBuffer());
    expect(bytes.equals(fs.readFileSync(DEMO_MODEL))).toBe(true);
    expect(Number(response.headers.get('content-length'))).toBe(bytes.length);
  });

  test('refusals are JSON: malformed hash 400, unknown 404, no token 401, viewer and inference 403', async () => {
    const cases: Array<[string, string | null, number, RegExp]> = [
      ['/v1/artifacts/not-a-hash', ADMIN_TOKEN, 400, /64 lowercase hex digits, got "not-a-hash"/],
      [`/v1/artifacts/${variant.artifactSha256.toUpperCase()}`, ADMIN_TOKEN, 400, /64 lowercase hex digits/],
      [`/v1/artifacts/${'0'.repeat(64)}`, ADMIN_TOKEN, 404, /no artifact with sha256 0{64}/],
      [`/v1/artifacts/${variant.artifactSha256}`, null, 401, /needs a bearer token/],
      [`/v1/artifacts/${variant.artifactSha256}`, tokens.viewer, 403, /needs the admin role/],
      [`/v1/artifacts/${variant.artifactSha256}`, tokens.inference, 403, /needs the admin role/],
    ];
    for (const [urlPath, token, status, message] of cases) {
      const response = await get(urlPath, token);
      expect([urlPath, response.status]).toEqual([urlPath, status]);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(((await response.json()) as { error: string }).error).toMatch(message);
    }
  });

  test('an upload sent as curl sends it (form-urlencoded) comes back as application/onnx once registered', async () => {
    const bytes = fs.readFileSync(path.join(FIXTURES, 'tiny-classifier.onnx'));
    const uploaded = await fetch(`${gateway.url}/v1/artifacts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new Uint8Array(bytes),
    });
    const { sha256 } = (await uploaded.json()) as { sha256: string };
    expect((await get(`/v1/artifacts/${sha256}`)).headers.get('content-type')).toBe('application/x-www-form-urlencoded');
    const registered = await gateway.graphql(`mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { name } } }`, {
      input: { name: 'tiny', task: 'CLASSIFICATION', artifactSha256: sha256, preprocessing: { height: 28, width: 28, channels: 1 } },
    });
    expect(registered.errors).toBeUndefined();
    const response = await get(`/v1/artifacts/${sha256}`);
    expect(response.headers.get('content-type')).toBe('application/onnx');
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
  });

  test("the store's own working files (gallery images, packed datasets) are not served", async () => {
    const stored = await gateway.services.artifacts.put(Buffer.from('an image the gateway keeps for a gallery'));
    expect((await get(`/v1/artifacts/${stored.sha256}`)).status).toBe(404);
  });

  test("GET /v1/variants/{id}/card: the variant's card, for viewers", async () => {
    const response = await get(`/v1/variants/${variant.id}/card`, tokens.viewer);
    expect(response.status).toBe(200);
    const text = await response.text();
    const card = parseModelCard(text, 'downloaded card');
    const demoCard = parseModelCard(fs.readFileSync(DEMO_MODEL.replace(/\.onnx$/, '.card.json'), 'utf8'), 'demo card');
    expect(card).toMatchObject({
      name: 'demo-fp32',
      task: 'CLASSIFICATION',
      preprocessing: demoCard.preprocessing,
      labels: demoCard.labels,
      output: 'logits',
      metrics: {},
      variant: { id: variant.id, model: 'demo', tag: 'fp32', precision: 'FP32', method: 'upload', artifactSha256: variant.artifactSha256 },
    });

    expect((await get(`/v1/variants/${variant.id}/card`, tokens.inference)).status).toBe(403);
    const unknown = await get('/v1/variants/no-such-variant/card', tokens.viewer);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: 'no variant with id no-such-variant' });
  });
}

describe('artifact and card downloads (SQLite)', () => downloadSuite('sqlite'));
describeWithPostgres('artifact and card downloads (PostgreSQL)', () => downloadSuite('postgres'));
