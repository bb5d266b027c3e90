import fs from 'node:fs';
import path from 'node:path';
import { ADMIN_TOKEN, FIXTURES, startTestGateway, uploadArtifact, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';

const REGISTER = `
  mutation Register($input: RegisterModelInput!) {
    registerModel(input: $input) {
      model { id name task labels preprocessing { inputName layout height width channels mean std } }
      variant { id tag precision status artifactSha256 artifactSize signature { inputs { name datatype shape } outputs { name datatype shape } } }
    }
  }`;

const LIST = `{ models { name task variants { id tag status } } }`;

const classifierInput = (sha256: string, name = 'tiny') => ({
  name,
  task: 'CLASSIFICATION',
  labels: Array.from({ length: 10 }, (_, i) => `label-${i}`),
  preprocessing: { height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353] },
  artifactSha256: sha256,
});

const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name));

async function upload(gateway: TestGateway, file: string): Promise<string> {
  const response = await uploadArtifact(gateway, fixture(file));
  expect(response.status).toBe(201);
  return ((await response.json()) as { sha256: string }).sha256;
}

async function countRows(gateway: TestGateway): Promise<{ models: number; variants: number; audit: number }> {
  const db = gateway.services.database.db;
  const count = async (table: 'models' | 'variants' | 'audit_log') =>
    Number((await db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  return { models: await count('models'), variants: await count('variants'), audit: await count('audit_log') };
}

function registrySuite(dialect: Dialect) {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('register, list, inspect and retire a model through GraphQL over HTTP', async () => {
    const sha256 = await upload(gateway, 'tiny-classifier.onnx');
    const registered = await gateway.graphql<{ registerModel: { model: { id: string; name: string; labels: string[] }; variant: { id: string; tag: string; status: string; artifactSha256: string; signature: { inputs: Array<{ name: string; shape: number[] }>; outputs: Array<{ shape: number[] }> } } } }>(
      REGISTER,
      { input: classifierInput(sha256) },
    );
    expect(registered.errors).toBeUndefined();
    const { model, variant } = registered.data!.registerModel;
    expect(model.name).toBe('tiny');
    expect(model.labels).toHaveLength(10);
    expect(variant).toMatchObject({ tag: 'fp32', status: 'ready', artifactSha256: sha256 });
    expect(variant.signature.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] }]);
    expect(variant.signature.outputs[0].shape).toEqual([-1, 10]);

    const listed = await gateway.graphql<{ models: Array<{ name: string; variants: Array<{ id: string; status: string }> }> }>(LIST);
    expect(listed.data!.models).toEqual([{ name: 'tiny', task: 'CLASSIFICATION', variants: [{ id: variant.id, tag: 'fp32', status: 'ready' }] }]);

    const one = await gateway.graphql<{ model: { preprocessing: { inputName: string; layout: string } }; variant: { model: { name: string } } }>(
      `query($id: ID!) { model(name: "tiny") { preprocessing { inputName layout } } variant(id: $id) { model { name } } }`,
      { id: variant.id },
    );
    expect(one.data!.model.preprocessing).toEqual({ inputName: 'input', layout: 'NCHW' });
    expect(one.data!.variant.model.name).toBe('tiny');

    const retired = await gateway.graphql<{ retireVariant: { status: string } }>(
      `mutation($id: ID!) { retireVariant(id: $id) { status } }`,
      { id: variant.id },
    );
    expect(retired.data!.retireVariant.status).toBe('retired');

    const audit = await gateway.graphql<{ auditLog: Array<{ action: string; actor: string }> }>(`{ auditLog { action actor } }`);
    expect(audit.data!.auditLog.map((e) => e.action)).toEqual(expect.arrayContaining(['model.register', 'variant.retired']));
    expect(audit.data!.auditLog[0].actor).toBe('admin (GATEWAY_ADMIN_TOKEN)');
  });

  test('a retrieval encoder registers from a local path', async () => {
    const result = await gateway.graphql<{ registerModel: { model: { task: string; labels: string[] }; variant: { signature: { outputs: Array<{ shape: number[] }> } } } }>(
      REGISTER,
      {
        input: {
          name: 'embedder',
          task: 'RETRIEVAL',
          preprocessing: { height: 28, width: 28, channels: 1 },
          localPath: path.join(FIXTURES, 'tiny-embedder.onnx'),
        },
      },
    );
    expect(result.errors).toBeUndefined();
    expect(result.data!.registerModel.model).toMatchObject({ task: 'RETRIEVAL', labels: [] });
    expect(result.data!.registerModel.variant.signature.outputs[0].shape).toEqual([-1, 16]);
  });

  describe('bad input: a clear error with a code, and nothing written', () => {
    const cases: Array<[string, () => Promise<Record<string, unknown>>, string, RegExp]> = [
      ['malformed (not ONNX) upload', async () => classifierInput(await upload(gateway, 'make_fixtures.py'), 'bad1'), 'INVALID_MODEL', /not an ONNX model/],
      ['ONNX with an operator outside the allow-list (a custom domain onnxruntime cannot load either)', async () => classifierInput(await upload(gateway, 'unloadable.onnx'), 'bad2'), 'INVALID_MODEL', /operators not allowed: com\.example:NoSuchOperator/],
      ['two inputs', async () => classifierInput(await upload(gateway, 'two-inputs.onnx'), 'bad3'), 'INVALID_MODEL', /exactly one input/],
      ['label count that does not fit the outputs', async () => ({ ...classifierInput(await upload(gateway, 'tiny-classifier.onnx'), 'bad4'), labels: ['a', 'b'] }), 'INVALID_MODEL', /10 classes but 2 labels/],
      ['preprocessing that does not fit the input', async () => ({ ...classifierInput(await upload(gateway, 'tiny-classifier.onnx'), 'bad5'), preprocessing: { height: 32, width: 32, channels: 1 } }), 'INVALID_MODEL', /does not fit NCHW images of 1x32x32/],
      ['wrong task for the outputs', async () => ({ ...classifierInput(await upload(gateway, 'tiny-embedder.onnx'), 'bad6') }), 'INVALID_MODEL', /16 classes but 10 labels/],
      ['duplicate model name', async () => classifierInput(await upload(gateway, 'tiny-classifier.onnx'), 'tiny'), 'CONFLICT', /already exists/],
      ['unknown artifact', async () => classifierInput('0'.repeat(64), 'bad7'), 'NOT_FOUND', /upload the file to POST \/v1\/artifacts first/],
      ['malformed sha256', async () => classifierInput('xyz', 'bad8'), 'BAD_USER_INPUT', /64 lowercase hex/],
      ['both artifact and local path', async () => ({ ...classifierInput('0'.repeat(64), 'bad9'), localPath: '/etc/hosts' }), 'BAD_USER_INPUT', /exactly one of/],
      ['missing local file', async () => ({ ...classifierInput('x', 'bad10'), artifactSha256: undefined, localPath: '/nonexistent/model.onnx' }), 'BAD_USER_INPUT', /ENOENT/],
      ['invalid model name', async () => classifierInput('0'.repeat(64), 'has space'), 'BAD_USER_INPUT', /model name/],
      ['channels out of range (validation)', async () => ({ ...classifierInput('0'.repeat(64), 'bad11'), preprocessing: { height: 28, width: 28, channels: 2 } }), 'BAD_USER_INPUT', /Argument Validation Error/],
    ];

    test.each(cases)('%s', async (_name, makeInput, code, message) => {
      const input = await makeInput();
      const before = await countRows(gateway);
      const result = await gateway.graphql(REGISTER, { input });
      expect(result.data).toBeFalsy();
      expect(result.errors?.[0].extensions?.code).toBe(code);
      expect(result.errors?.[0].message).toMatch(message);
      expect(await countRows(gateway)).toEqual(before);
    });

    test('invalid GraphQL input (unknown enum value) is refused before any resolver runs', async () => {
      const result = await gateway.graphql(REGISTER, { input: { ...classifierInput('0'.repeat(64), 'bad12'), task: 'DETECTION' } });
      expect(result.status).toBe(400);
      expect(result.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    });

    test('unknown variant', async () => {
      const result = await gateway.graphql(`mutation { retireVariant(id: "nope") { id } }`);
      expect(result.errors?.[0]).toMatchObject({ message: 'no variant with id nope', extensions: { code: 'NOT_FOUND' } });
      const query = await gateway.graphql<{ variant: null; model: null }>(`{ variant(id: "nope") { id } model(name: "nope") { id } }`);
      expect(query.data).toEqual({ variant: null, model: null });
    });
  });

  describe('tokens and roles', () => {
    test('no token, a bad token and the wrong role are refused with clear codes', async () => {
      const anonymous = await gateway.graphql(LIST, {}, null);
      expect(anonymous.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');

      const bogus = await gateway.graphql(LIST, {}, 'not-a-real-token');
      expect(bogus.status).toBe(401);
      expect(bogus.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');

      const created = await gateway.graphql<{ viewer: { token: string; info: { id: string } }; inference: { token: string } }>(
        `mutation { viewer: createApiToken(name: "ci viewer", role: viewer) { token info { id } }
                    inference: createApiToken(name: "ci serving", role: inference) { token } }`,
      );
      const viewerToken = created.data!.viewer.token;
      const inferenceToken = created.data!.inference.token;

      expect((await gateway.graphql(LIST, {}, viewerToken)).errors).toBeUndefined();
      const inferenceQuery = await gateway.graphql(LIST, {}, inferenceToken);
      expect(inferenceQuery.errors?.[0].extensions?.code).toBe('FORBIDDEN');

      const before = await countRows(gateway);
      const viewerMutation = await gateway.graphql(REGISTER, { input: classifierInput('0'.repeat(64), 'viewer-made') }, viewerToken);
      expect(viewerMutation.errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
      expect(viewerMutation.errors?.[0].message).toMatch(/needs the admin role/);
      expect(await countRows(gateway)).toEqual(before);

      const upload = await uploadArtifact(gateway, fixture('tiny-classifier.onnx'), viewerToken);
      expect(upload.status).toBe(403);
      expect(await upload.json()).toEqual({ error: expect.stringMatching(/needs the admin role/) });

      await gateway.graphql(`mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }`, { id: created.data!.viewer.info.id });
      // The authentication cache holds entries briefly; revocation clears it at once.
      expect((await gateway.graphql(LIST, {}, viewerToken)).errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');

      const tokens = await gateway.graphql<{ apiTokens: Array<{ name: string; role: string }> }>(`{ apiTokens { name role } }`, {}, ADMIN_TOKEN);
      expect(tokens.data!.apiTokens.map((t) => t.name)).toEqual(['admin (GATEWAY_ADMIN_TOKEN)', 'ci viewer', 'ci serving']);
    });
  });

  describe('artifact upload', () => {
    test('stores content-addressed bytes and refuses bodies over the limit', async () => {
      const bytes = fixture('tiny-classifier.onnx');
      const first = await (await uploadArtifact(gateway, bytes)).json();
      const second = await (await uploadArtifact(gateway, bytes)).json();
      expect(first).toEqual(second);
      expect(first).toMatchObject({ size: bytes.length, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });

      const limited = await startTestGateway({ dialect, env: { MAX_UPLOAD_BYTES: '1kb' } });
      try {
        const tooBig = await uploadArtifact(limited, bytes);
        expect(tooBig.status).toBe(413);
        expect(await tooBig.json()).toEqual({ error: 'artifact is larger than the limit of 1024 bytes' });
        const artifactDir = path.join(limited.dataDir, 'artifacts');
        const files = fs.existsSync(artifactDir) ? fs.readdirSync(artifactDir).filter((f) => f !== 'tmp') : [];
        expect(files).toEqual([]);
      } finally {
        await limited.stop();
      }
    });

    test('an empty upload is refused', async () => {
      const response = await uploadArtifact(gateway, Buffer.alloc(0));
      expect(response.status).toBe(400);
    });
  });
}

describe('registry over GraphQL (SQLite)', () => registrySuite('sqlite'));
describeWithPostgres('registry over GraphQL (PostgreSQL)', () => registrySuite('postgres'));
