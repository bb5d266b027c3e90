import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseModelCard } from '../../workers/common/model-card';
import { FIXTURES, startTestGateway, uploadArtifact, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';

/**
 * Registration takes task, description, labels and preprocessing from a model card (uploaded, or
 * beside localPath), the request's own fields winning; labels can be corrected later, audited.
 */

const DEMO_MODEL = path.resolve(__dirname, '..', '..', 'deploy', 'demo', 'models', 'vit-fmnist-cls-op17.onnx');
const DEMO_CARD = parseModelCard(fs.readFileSync(DEMO_MODEL.replace(/\.onnx$/, '.card.json'), 'utf8'), 'demo card');

const REGISTER = `mutation($input: RegisterModelInput!) {
  registerModel(input: $input) { model { name task description labels preprocessing { inputName layout height width channels mean std } } }
}`;
const SET_LABELS = `mutation($model: String!, $labels: [String!]!) { setModelLabels(model: $model, labels: $labels) { name labels updatedAt } }`;

interface RegisteredModel {
  name: string;
  task: string;
  description: string;
  labels: string[];
  preprocessing: { inputName: string; layout: string; height: number; width: number; channels: number; mean: number[]; std: number[] };
}

function cardSuite(dialect: Dialect) {
  let gateway: TestGateway;
  let tmp: string;
  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-cards-'));
  });
  afterAll(async () => {
    await gateway?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const register = (input: Record<string, unknown>) => gateway.graphql<{ registerModel: { model: RegisteredModel } }>(REGISTER, { input });
  const modelCount = async () => Number((await gateway.services.database.db.selectFrom('models').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const upload = async (body: Buffer) => ((await (await uploadArtifact(gateway, body)).json()) as { sha256: string }).sha256;

  test('the demo classifier registers from its localPath alone: task, labels and preprocessing come from its card', async () => {
    const result = await register({ name: 'demo', localPath: DEMO_MODEL });
    expect(result.errors).toBeUndefined();
    const model = result.data!.registerModel.model;
    expect(model.task).toBe('CLASSIFICATION');
    expect(model.labels).toEqual(DEMO_CARD.labels);
    expect(model.labels[9]).toBe('Ankle boot');
    expect(model.description).toBe(DEMO_CARD.description);
    expect(model.preprocessing).toEqual(DEMO_CARD.preprocessing);

    const audit = await gateway.graphql<{ auditLog: Array<{ action: string; details: { card: string | null } }> }>(`{ auditLog(limit: 5) { action details } }`);
    const entry = audit.data!.auditLog.find((e) => e.action === 'model.register');
    expect(entry?.details.card).toBe(DEMO_MODEL.replace(/\.onnx$/, '.card.json'));
  });

  test("fields given in the input win over the card's, field by field", async () => {
    const labels = DEMO_CARD.labels!.map((l) => l.toUpperCase());
    const result = await register({
      name: 'demo-overridden',
      localPath: DEMO_MODEL,
      description: 'mine',
      labels,
      preprocessing: { mean: [0.5] },
    });
    expect(result.errors).toBeUndefined();
    const model = result.data!.registerModel.model;
    expect(model.labels).toEqual(labels);
    expect(model.description).toBe('mine');
    // mean from the input, std (and the rest) from the card.
    expect(model.preprocessing).toEqual({ ...DEMO_CARD.preprocessing, mean: [0.5] });
  });

  test('an uploaded card serves an uploaded model', async () => {
    const labels = Array.from({ length: 10 }, (_, i) => `kind-${i}`);
    const card = { name: 'tiny', task: 'CLASSIFICATION', preprocessing: { ...DEMO_CARD.preprocessing, mean: [0.5], std: [0.5] }, labels, output: 'logits' };
    const modelSha = await upload(fs.readFileSync(path.join(FIXTURES, 'tiny-classifier.onnx')));
    const cardSha = await upload(Buffer.from(JSON.stringify(card)));
    const result = await register({ name: 'tiny-from-card', artifactSha256: modelSha, cardArtifactSha256: cardSha });
    expect(result.errors).toBeUndefined();
    expect(result.data!.registerModel.model).toMatchObject({ task: 'CLASSIFICATION', labels, preprocessing: card.preprocessing });
  });

  test('without a card, task and preprocessing are asked for; a bad card is refused and nothing is written', async () => {
    const bare = path.join(tmp, 'bare.onnx');
    fs.copyFileSync(path.join(FIXTURES, 'tiny-classifier.onnx'), bare);
    const before = await modelCount();

    const noTask = await register({ name: 'bare', localPath: bare, preprocessing: { height: 28, width: 28, channels: 1 } });
    expect(noTask.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(noTask.errors?.[0].message).toMatch(/give the task/);
    const noPreprocessing = await register({ name: 'bare', task: 'CLASSIFICATION', localPath: bare });
    expect(noPreprocessing.errors?.[0].message).toMatch(/give preprocessing height, width, channels \(and mean, std\), or a model card/);
    const partial = await register({ name: 'bare', task: 'CLASSIFICATION', localPath: bare, preprocessing: { height: 28 } });
    expect(partial.errors?.[0].message).toMatch(/give preprocessing width, channels /);

    const badCards: Array<[string, string, RegExp]> = [
      ['{ not json', 'BAD_USER_INPUT', /model card is not valid JSON/],
      [JSON.stringify({ ...DEMO_CARD, labels: ['a', 'a'] }), 'BAD_USER_INPUT', /labels must be distinct \(from .*bare\.card\.json\)/],
      [JSON.stringify({ ...DEMO_CARD, labels: ['a', 'b'] }), 'INVALID_MODEL', /10 classes but 2 labels/],
      [JSON.stringify({ ...DEMO_CARD, output: 'embedding' }), 'INVALID_MODEL', /describes output "embedding", but the model's output is "logits"/],
    ];
    for (const [text, code, message] of badCards) {
      fs.writeFileSync(path.join(tmp, 'bare.card.json'), text);
      const refused = await register({ name: 'bare', localPath: bare });
      expect(refused.errors?.[0]).toMatchObject({ extensions: { code } });
      expect(refused.errors?.[0].message).toMatch(message);
    }
    const missingCard = await register({ name: 'bare', task: 'CLASSIFICATION', artifactSha256: await upload(fs.readFileSync(bare)), cardArtifactSha256: 'f'.repeat(64) });
    expect(missingCard.errors?.[0]).toMatchObject({ extensions: { code: 'NOT_FOUND' } });
    expect(await modelCount()).toBe(before);
  });

  test('a FIFO named like a card is refused at once, not read', async () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'fifo-'));
    const model = path.join(dir, 'm.onnx');
    fs.copyFileSync(path.join(FIXTURES, 'tiny-classifier.onnx'), model);
    execFileSync('mkfifo', [path.join(dir, 'm.card.json')]);
    const refused = await register({ name: 'fifo', task: 'CLASSIFICATION', localPath: model, preprocessing: { height: 28, width: 28, channels: 1 } });
    expect(refused.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(refused.errors?.[0].message).toMatch(/model card .*m\.card\.json is a FIFO/);
  });

  test('setModelLabels corrects the names, checked against the class count, audited', async () => {
    const labels = DEMO_CARD.labels!.map((l, i) => (i === 0 ? 'T-shirt' : l));
    const refusals: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ model: 'demo', labels: ['a', 'b'] }, 'BAD_USER_INPUT', /model demo has 10 classes .*give 10 labels, got 2/],
      [{ model: 'demo', labels: [...labels.slice(0, 9), 'Trouser'] }, 'BAD_USER_INPUT', /labels must be distinct/],
      [{ model: 'demo', labels: [...labels.slice(0, 9), ' '] }, 'BAD_USER_INPUT', /must not be empty/],
      [{ model: 'nobody', labels }, 'NOT_FOUND', /no model named "nobody"/],
    ];
    for (const [variables, code, message] of refusals) {
      const refused = await gateway.graphql(SET_LABELS, variables);
      expect(refused.errors?.[0]).toMatchObject({ extensions: { code } });
      expect(refused.errors?.[0].message).toMatch(message);
    }
    const viewer = await gateway.graphql<{ createApiToken: { token: string } }>(`mutation { createApiToken(name: "cards-viewer", role: viewer) { token } }`);
    const forbidden = await gateway.graphql(SET_LABELS, { model: 'demo', labels }, viewer.data!.createApiToken.token);
    expect(forbidden.errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect((await gateway.graphql<{ model: { labels: string[] } }>(`{ model(name: "demo") { labels } }`)).data!.model.labels).toEqual(DEMO_CARD.labels);

    const changed = await gateway.graphql<{ setModelLabels: { labels: string[] } }>(SET_LABELS, { model: 'demo', labels });
    expect(changed.errors).toBeUndefined();
    expect(changed.data!.setModelLabels.labels).toEqual(labels);
    const audit = await gateway.graphql<{ auditLog: Array<{ action: string; details: Record<string, unknown> }> }>(`{ auditLog(limit: 3) { action details } }`);
    expect(audit.data!.auditLog[0]).toEqual({
      action: 'model.labels',
      details: { name: 'demo', count: 10, changed: [{ index: 0, from: 'T-shirt/top', to: 'T-shirt' }] },
    });
    // The same labels again change nothing and write no audit entry.
    await gateway.graphql(SET_LABELS, { model: 'demo', labels });
    expect((await gateway.graphql<{ auditLog: Array<{ action: string }> }>(`{ auditLog { action } }`)).data!.auditLog.filter((e) => e.action === 'model.labels')).toHaveLength(1);
  });
}

describe('model cards and labels (SQLite)', () => cardSuite('sqlite'));
describeWithPostgres('model cards and labels (PostgreSQL)', () => cardSuite('postgres'));
