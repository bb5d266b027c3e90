import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../gateway/config/config';
import { checkOnnxLimits, DEFAULT_ONNX_ALLOWED_OPS, type OnnxLimits } from '../../gateway/registry/onnx-limits';
import { encodeModel, onnx } from '../../workers/engine/onnx/proto';
import { FIXTURES, startTestGateway, type TestGateway } from '../support/gateway-harness';

const REPO = path.resolve(__dirname, '..', '..');
const DEFAULTS: OnnxLimits = { maxNodes: 100_000, allowedOps: new Set(DEFAULT_ONNX_ALLOWED_OPS) };
type Graph = onnx.IGraphProto & { node: onnx.INodeProto[]; initializer: onnx.ITensorProto[] };
const classifier = () => onnx.ModelProto.decode(fs.readFileSync(path.join(FIXTURES, 'tiny-classifier.onnx'))) as onnx.ModelProto & { graph: Graph };

/** The tiny classifier with `edit` applied to its decoded graph. */
function edited(edit: (graph: Graph) => void): Buffer {
  const model = classifier();
  edit(model.graph);
  return Buffer.from(encodeModel(model));
}

const refusal = (bytes: Uint8Array, limits = DEFAULTS) => {
  try {
    checkOnnxLimits(bytes, limits);
  } catch (error) {
    return error as { code: string; message: string };
  }
  return undefined;
};

describe('ONNX artifact limits', () => {
  test('every model the project ships passes the default limits', () => {
    const files = [
      ...fs.readdirSync(path.join(REPO, 'deploy', 'demo', 'models')).map((f) => path.join(REPO, 'deploy', 'demo', 'models', f)),
      ...['engine', 'fimaq', 'gateway'].flatMap((dir) => fs.readdirSync(path.join(REPO, 'test', 'fixtures', dir)).map((f) => path.join(REPO, 'test', 'fixtures', dir, f))),
    ].filter((f) => f.endsWith('.onnx') && !f.endsWith('unloadable.onnx'));
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) expect([file, refusal(fs.readFileSync(file))]).toEqual([file, undefined]);
  });

  test('an operator outside the allow-list, a custom domain, or control flow is INVALID_MODEL naming them', () => {
    const looping = edited((g) => g.node.push(onnx.NodeProto.create({ opType: 'Loop', input: [], output: ['x'] })));
    expect(refusal(looping)).toMatchObject({ code: 'INVALID_MODEL', message: expect.stringMatching(/operators not allowed: Loop;.*ONNX_ALLOWED_OPS/) });
    const custom = edited((g) => (g.node[0].domain = 'com.example'));
    expect(refusal(custom)?.message).toMatch(/operators not allowed: com\.example:/);
    // The allow-list is the setting's.
    const op = classifier().graph.node[0].opType;
    expect(refusal(fs.readFileSync(path.join(FIXTURES, 'tiny-classifier.onnx')), { maxNodes: 100, allowedOps: new Set(['Relu']) })?.message).toMatch(new RegExp(`not allowed: .*${op}`));
  });

  test('operators inside subgraphs are counted and checked', () => {
    const nested = edited((g) => {
      const body = onnx.GraphProto.create({ name: 'body', node: [onnx.NodeProto.create({ opType: 'Scan' })] });
      g.node.push(onnx.NodeProto.create({ opType: 'Identity', attribute: [onnx.AttributeProto.create({ name: 'g', g: body })] }));
    });
    expect(refusal(nested)?.message).toMatch(/not allowed: Scan/);
  });

  test('more nodes than ONNX_MAX_NODES is INVALID_MODEL', () => {
    const nodes = classifier().graph.node.length;
    expect(refusal(fs.readFileSync(path.join(FIXTURES, 'tiny-classifier.onnx')), { ...DEFAULTS, maxNodes: nodes - 1 })).toMatchObject({
      code: 'INVALID_MODEL',
      message: `the model has ${nodes} nodes, more than the limit of ${nodes - 1} (ONNX_MAX_NODES)`,
    });
  });

  test('tensors with external data are refused, in initializers and in Constant attributes alike', () => {
    const location = [onnx.StringStringEntryProto.create({ key: 'location', value: '/etc/passwd' })];
    const initializer = edited((g) => {
      g.initializer[0].externalData = location;
      g.initializer[0].dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    });
    expect(refusal(initializer)).toMatchObject({ code: 'INVALID_MODEL', message: expect.stringMatching(/external data is refused/) });
    const constant = edited((g) =>
      g.node.push(onnx.NodeProto.create({ opType: 'Constant', output: ['c'], attribute: [onnx.AttributeProto.create({ name: 'value', t: onnx.TensorProto.create({ name: 'c', externalData: location }) })] })),
    );
    expect(refusal(constant)?.message).toMatch(/tensor "c" keeps its data in an external file/);
  });

  test('ONNX_MAX_NODES and ONNX_ALLOWED_OPS are read by the config', () => {
    const config = loadConfig({ ONNX_MAX_NODES: '12', ONNX_ALLOWED_OPS: 'MatMul, Add,com.microsoft:Attention' });
    expect(config.onnxLimits.maxNodes).toBe(12);
    expect([...config.onnxLimits.allowedOps]).toEqual(['MatMul', 'Add', 'com.microsoft:Attention']);
    expect(() => loadConfig({ ONNX_MAX_NODES: '0' })).toThrow(/ONNX_MAX_NODES/);
  });
});

describe('ONNX artifact limits at registration', () => {
  let gateway: TestGateway;
  let dir: string;

  beforeAll(async () => {
    gateway = await startTestGateway({ env: { ONNX_MAX_NODES: '1' } });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-limits-'));
  });
  afterAll(async () => {
    await gateway?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('registerModel with a model over the limits answers INVALID_MODEL and registers nothing', async () => {
    const file = path.join(dir, 'classifier.onnx');
    fs.copyFileSync(path.join(FIXTURES, 'tiny-classifier.onnx'), file);
    const result = await gateway.graphql(
      `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { id } } }`,
      { input: { name: 'too-big', task: 'CLASSIFICATION', labels: Array.from({ length: 10 }, (_, i) => `c${i}`), preprocessing: { height: 28, width: 28, channels: 1 }, localPath: file } },
    );
    expect(result.errors?.[0]).toMatchObject({ extensions: { code: 'INVALID_MODEL' }, message: expect.stringMatching(/more than the limit of 1 \(ONNX_MAX_NODES\)/) });
    expect((await gateway.graphql<{ models: unknown[] }>(`{ models { name } }`)).data?.models).toEqual([]);
  });
});
