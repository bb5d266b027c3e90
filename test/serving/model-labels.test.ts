import { startTestGateway, type TestGateway } from '../support/gateway-harness';
import { imagePixels, LABELS, png, post, registerModel } from './support/serving-fixtures';

/** Labels corrected with setModelLabels are what the very next answer and feedback use. */

const MODEL = 'relabelled';

describe('labels corrected after registration', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway();
    await registerModel(gateway, MODEL, 'tiny-classifier.onnx');
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  const classify = async () => {
    const reply = await post(gateway, `/v2/models/${MODEL}/classify?top=10`, png(imagePixels(7)), { 'content-type': 'image/png' });
    expect(reply.status).toBe(200);
    return { id: reply.headers.get('x-request-id') as string, labels: (reply.json.predictions as Array<{ label: string }>).map((p) => p.label) };
  };

  test('classify and feedback use the new names from the next request on', async () => {
    const before = await classify();
    expect([...before.labels].sort()).toEqual([...LABELS].sort());

    const renamed = LABELS.map((l) => `${l}-renamed`);
    const changed = await gateway.graphql(`mutation($labels: [String!]!) { setModelLabels(model: "${MODEL}", labels: $labels) { name } }`, { labels: renamed });
    expect(changed.errors).toBeUndefined();

    const after = await classify();
    // Same image, same model: the same order of classes, under their new names.
    expect(after.labels).toEqual(before.labels.map((l) => `${l}-renamed`));

    const oldName = await post(gateway, `/v2/models/${MODEL}/feedback`, { id: after.id, label: LABELS[0] });
    expect(oldName.status).toBe(400);
    expect(oldName.json.error).toMatch(/unknown label "tshirt"/);
    const newName = await post(gateway, `/v2/models/${MODEL}/feedback`, { id: after.id, label: renamed[0] });
    expect(newName.status).toBe(200);
  });
});
