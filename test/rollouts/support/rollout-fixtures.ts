import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { decodeModel, encodeModel, onnx } from '../../../workers/engine/onnx/proto';
import { tensorToProto } from '../../../workers/engine/onnx/tensor';
import { FIXTURES, type TestGateway } from '../../support/gateway-harness';
import { inferenceBody, png, post, tensorValues } from '../../serving/support/serving-fixtures';
import { FASHION_MNIST_SAMPLE } from './encoder-variants';

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/** A seeded uniform generator, so corrupted weights are the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

function loadModel(file: string): { model: onnx.ModelProto; graph: onnx.GraphProto } {
  const model = decodeModel(fs.readFileSync(file));
  return { model, graph: model.graph as onnx.GraphProto };
}

const tinyClassifier = () => loadModel(path.join(FIXTURES, 'tiny-classifier.onnx'));

/**
 * An ONNX file (a fixture name, or a path) with its float weights replaced by noise: a variant
 * whose answers are garbage. Integer initializers (shapes, axes) are kept so the graph still runs.
 * The noise is uniform in ±scale; on the demo encoder a scale of 1 costs more recall@10 than the
 * default 0.1 (which still finds a same-class neighbour for most queries).
 */
export function corruptedWeights(file: string, scale = 0.1): Buffer {
  const { model, graph } = loadModel(path.resolve(FIXTURES, file));
  const random = seeded(11);
  graph.initializer = graph.initializer.map((t) => {
    if (t.dataType !== FLOAT) return t;
    const dims = (t.dims ?? []).map(Number);
    const size = dims.reduce((a, b) => a * b, 1);
    return tensorToProto(t.name as string, FLOAT, dims, Array.from({ length: size }, () => (random() * 2 - 1) * scale)) as onnx.TensorProto;
  });
  return Buffer.from(encodeModel(model));
}

/**
 * tiny-classifier.onnx answering exactly the same logits, after a heavy matrix product that
 * depends on the input (so onnxruntime cannot fold it away) and is added times zero: a variant
 * that is only slower. `size` sets the cost, about 2·size³ flops per row.
 */
export function slowClassifier(size: number): Buffer {
  const { model, graph } = tinyClassifier();
  const gemm = graph.node.find((n) => n.opType === 'Gemm') as onnx.NodeProto;
  gemm.output = ['fast_logits'];
  const random = seeded(5);
  graph.initializer.push(
    tensorToProto('slow_a', FLOAT, [size, size], Array.from({ length: size * size }, () => random() * 0.001)) as onnx.TensorProto,
    tensorToProto('slow_zero', FLOAT, [1], [0]) as onnx.TensorProto,
    tensorToProto('slow_axes', onnx.TensorProto.DataType.INT64, [2], [1, 2]) as onnx.TensorProto,
    tensorToProto('slow_shape', onnx.TensorProto.DataType.INT64, [3], [-1, 1, 1]) as onnx.TensorProto,
  );
  const node = (opType: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []) => onnx.NodeProto.create({ opType, input, output, attribute, name: `slow_${output[0]}` });
  graph.node.push(
    node('ReduceSum', ['flat', 'slow_axes_flat'], ['slow_sum'], [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 1 }]),
    node('Reshape', ['slow_sum', 'slow_shape'], ['slow_sum3']),
    node('Mul', ['slow_sum3', 'slow_a'], ['slow_scaled']),
    node('MatMul', ['slow_scaled', 'slow_a'], ['slow_product']),
    node('ReduceSum', ['slow_product', 'slow_axes'], ['slow_total'], [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }]),
    node('Mul', ['slow_total', 'slow_zero'], ['slow_nothing']),
    node('Unsqueeze', ['slow_nothing', 'slow_axis1'], ['slow_column']),
    node('Add', ['fast_logits', 'slow_column'], [graph.output[0].name as string]),
  );
  graph.initializer.push(
    tensorToProto('slow_axes_flat', onnx.TensorProto.DataType.INT64, [1], [1]) as onnx.TensorProto,
    tensorToProto('slow_axis1', onnx.TensorProto.DataType.INT64, [1], [1]) as onnx.TensorProto,
  );
  return Buffer.from(encodeModel(model));
}

const idx = (file: string) => zlib.gunzipSync(fs.readFileSync(path.join(FASHION_MNIST_SAMPLE, file)));

/**
 * The committed Fashion-MNIST sample (IDX), as pixels: real, independent images, so agreement
 * measured on any stretch of traffic is the same on average (the seeded noise images of the
 * serving tests are correlated from one seed to the next).
 */
const fashionMnist = new Map<string, Uint8Array[]>();
export function fashionMnistPixels(split: 'train' | 't10k', i: number): Uint8Array {
  let images = fashionMnist.get(split);
  if (!images) {
    const raw = idx(`${split}-images-idx3-ubyte.gz`);
    const count = raw.readUInt32BE(4);
    images = Array.from({ length: count }, (_, k) => raw.subarray(16 + k * 784, 16 + (k + 1) * 784));
    fashionMnist.set(split, images);
  }
  return images[i % images.length];
}

/** The demo models' class names (their cards'), by class index. */
const FASHION_MNIST_CLASSES: string[] = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'demo', 'models', 'vit-fmnist-emb-op17.card.json'), 'utf8')).labels;
const fashionMnistClasses = new Map<string, Uint8Array>();
/** The class name of the image `fashionMnistPixels(split, i)` returns. */
export function fashionMnistLabel(split: 'train' | 't10k', i: number): string {
  let classes = fashionMnistClasses.get(split);
  if (!classes) {
    const raw = idx(`${split}-labels-idx1-ubyte.gz`);
    classes = raw.subarray(8, 8 + raw.readUInt32BE(4));
    fashionMnistClasses.set(split, classes);
  }
  return FASHION_MNIST_CLASSES[classes[i % classes.length]];
}

/** Who answered how many of the requests sent. */
export type Answered = Map<string, number>;

/**
 * How traffic reaches the model: tensors to /infer (normalized as the fixtures' classifiers
 * are), or PNG images to /search, which the gateway normalizes with the model's preprocessing.
 */
export type Route = 'infer' | 'search';

export interface TrafficOptions {
  /** Requests in flight at once (4). */
  concurrency?: number;
  route?: Route;
  /**
   * /search only: after each answer, feedback naming the query's Fashion-MNIST class (the model's
   * gallery must be uploaded with those class names as labels), so recall@k is scored per variant.
   */
  feedback?: boolean;
}

function request(gateway: TestGateway, model: string, route: Route, pixels: Uint8Array) {
  if (route === 'search') return post(gateway, `/v2/models/${model}/search`, png(pixels), { 'content-type': 'image/png' });
  return post(gateway, `/v2/models/${model}/infer`, inferenceBody([tensorValues(pixels)]));
}

/**
 * Sends `count` requests to the model's policy route; returns who answered each. Image i of a
 * call is the test sample's image `seedBase + i`.
 */
export async function sendTraffic(gateway: TestGateway, model: string, count: number, seedBase = 0, options: TrafficOptions = {}): Promise<Answered> {
  const { concurrency = 4, route = 'infer', feedback = false } = options;
  if (feedback && route !== 'search') throw new Error('feedback by class is sent for /search traffic only');
  const answered: Answered = new Map();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const image = seedBase + next++;
      const reply = await request(gateway, model, route, fashionMnistPixels('t10k', image));
      if (reply.status !== 200) throw new Error(`${route} answered ${reply.status}: ${reply.raw.toString()}`);
      const variant = reply.headers.get('x-variant') ?? '?';
      answered.set(variant, (answered.get(variant) ?? 0) + 1);
      if (feedback) {
        const told = await post(gateway, `/v2/models/${model}/feedback`, { id: reply.json.id, label: fashionMnistLabel('t10k', image) });
        if (told.status !== 200) throw new Error(`feedback answered ${told.status}: ${told.raw.toString()}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return answered;
}

export interface RolloutView {
  id: string;
  status: string;
  step: number;
  trafficPercent: number;
  candidate: string;
  baseline: string;
  reason: string | null;
  events: Array<{ seq: number; kind: string; step: number; trafficPercent: number; actor: string; reason: string; figures: Array<{ guardrail: string; verdict: string; estimate: number | null; lower: number | null; upper: number | null; threshold: number; samples: number; pValue: number | null; pairs: { both: number; candidateOnly: number; baselineOnly: number; neither: number } | null }> }>;
}

export const ROLLOUT_FIELDS = 'id status step trafficPercent candidate baseline reason events { seq kind step trafficPercent actor reason figures { guardrail verdict estimate lower upper threshold samples pValue pairs { both candidateOnly baselineOnly neither } } }';

type GraphQLReply<T> = Awaited<ReturnType<TestGateway['graphql']>> & { data?: T };

export function startRollout(gateway: TestGateway, input: Record<string, unknown>): Promise<GraphQLReply<{ startRollout: RolloutView }>> {
  return gateway.graphql(`mutation($input: StartRolloutInput!) { startRollout(input: $input) { ${ROLLOUT_FIELDS} } }`, { input });
}

export async function readRollout(gateway: TestGateway, id: string): Promise<RolloutView> {
  const result = await gateway.graphql<{ rollout: RolloutView }>(`query($id: ID!) { rollout(id: $id) { ${ROLLOUT_FIELDS} } }`, { id });
  if (result.errors) throw new Error(result.errors[0].message);
  return result.data!.rollout;
}

export function rolloutAction(gateway: TestGateway, action: 'pauseRollout' | 'resumeRollout' | 'abortRollout' | 'promoteRollout', id: string): Promise<GraphQLReply<Record<string, RolloutView>>> {
  return gateway.graphql(`mutation($id: ID!) { ${action}(id: $id) { ${ROLLOUT_FIELDS} } }`, { id });
}

/** The model's routes as weights by variant tag, and its shadows. */
export async function readPolicy(gateway: TestGateway, model: string): Promise<{ version: number; routes: Record<string, number>; shadows: string[] }> {
  const result = await gateway.graphql<{ trafficPolicy: { version: number; routes: Array<{ variantTag: string; weight: number }>; shadows: Array<{ variantTag: string }> } }>(
    `query($model: String!) { trafficPolicy(model: $model) { version routes { variantTag weight } shadows { variantTag } } }`,
    { model },
  );
  if (result.errors) throw new Error(result.errors[0].message);
  const policy = result.data!.trafficPolicy;
  return { version: policy.version, routes: Object.fromEntries(policy.routes.map((r) => [r.variantTag, r.weight])), shadows: policy.shadows.map((s) => s.variantTag) };
}

/**
 * Sends traffic in rounds until the rollout reaches a status in `until` (or `maxRequests` are
 * sent); returns who answered and the rollout as last read.
 */
export async function driveRollout(gateway: TestGateway, model: string, id: string, until: string[], options: TrafficOptions & { round: number; maxRequests: number; stopAtStep?: number }): Promise<{ answered: Answered; sent: number; rollout: RolloutView }> {
  const answered: Answered = new Map();
  let sent = 0;
  let rollout = await readRollout(gateway, id);
  while (!until.includes(rollout.status) && !(options.stopAtStep !== undefined && rollout.step >= options.stopAtStep) && sent < options.maxRequests) {
    for (const [variant, n] of await sendTraffic(gateway, model, options.round, sent, options)) answered.set(variant, (answered.get(variant) ?? 0) + n);
    sent += options.round;
    rollout = await readRollout(gateway, id);
  }
  return { answered, sent, rollout };
}
