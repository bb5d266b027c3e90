/**
 * An ONNX graph as a differentiable tfjs program. Nodes fall in three classes, decided at load:
 * - constant: every input is an initializer or folded constant; executed once at load.
 * - batch: depends only on the batch size (Shape of an activation and the integer arithmetic on it,
 *   the expanded cls token); evaluated once per batch size and cached.
 * - data: depends on the input values; executed on every run, differentiable by tf.grad.
 * The batch class exists after `resolveBatchShapes` probes the graph; without it Shape nodes on
 * activations simply run as data nodes on small int32 tensors.
 */
import * as tf from '@tensorflow/tfjs';
import { GraphNode, OnnxGraph, parseOnnx } from './onnx/graph';
import { hostToTf } from './ops/kernel';
import { kernelFor } from './ops';

export type NodeClass = 'constant' | 'batch' | 'data';

/** Replaces a node's input before the node runs: fake quantization, observers, learned roundings. */
export type OperandHook = (inputIndex: number, value: tf.Tensor) => tf.Tensor;

export interface RunOptions {
  /** Hooks by node name. */
  hooks?: ReadonlyMap<string, OperandHook>;
}

/** A Shape node's output as an affine function of the batch size: value[i] = offset[i] + perBatch[i] * N. */
interface ShapeTemplate {
  offset: number[];
  perBatch: number[];
}

const BATCH_CACHE_LIMIT = 4;

export class OnnxProgram {
  readonly graph: OnnxGraph;
  private readonly constants = new Map<string, tf.Tensor>();
  private readonly modifiedConstants = new Set<string>();
  private readonly classes: NodeClass[];
  /** Nodes that contribute to a graph output, in topological order. */
  private readonly liveOrder: number[];
  private readonly producers = new Map<string, number>();
  private readonly templates = new Map<number, ShapeTemplate>();
  private readonly batchCache = new Map<number, Map<string, tf.Tensor>>();
  /** Batch axis of every activation, known after resolveBatchShapes. */
  readonly batchAxes = new Map<string, number>();
  /** Shape of every activation at batch size 1, known after resolveBatchShapes. */
  readonly shapesAtBatchOne = new Map<string, number[]>();

  static fromBytes(bytes: Uint8Array, source?: string): OnnxProgram {
    return new OnnxProgram(parseOnnx(bytes, source));
  }

  constructor(graph: OnnxGraph) {
    this.graph = graph;
    for (const node of graph.nodes) kernelFor(node); // fail fast on the first unsupported op
    graph.nodes.forEach((node, i) => node.outputs.forEach((o) => o && this.producers.set(o, i)));
    this.liveOrder = this.topologicalLiveOrder();
    for (const [name, host] of graph.initializers) this.constants.set(name, hostToTf(host));
    this.classes = graph.nodes.map(() => 'data');
    this.foldConstants();
  }

  get nodes(): readonly GraphNode[] {
    return this.graph.nodes;
  }

  get inputNames(): string[] {
    return this.graph.inputs.map((i) => i.name);
  }

  get outputNames(): string[] {
    return this.graph.outputs.map((o) => o.name);
  }

  nodeClass(index: number): NodeClass {
    return this.classes[index];
  }

  /** Data nodes in execution order (indices into `nodes`). */
  get dataNodes(): number[] {
    return this.liveOrder.filter((i) => this.classes[i] === 'data');
  }

  producerOf(tensor: string): number | undefined {
    return this.producers.get(tensor);
  }

  isConstant(tensor: string): boolean {
    return this.constants.has(tensor);
  }

  /** Current value of an initializer or folded constant (owned by the program: do not dispose). */
  constantValue(tensor: string): tf.Tensor | undefined {
    return this.constants.get(tensor);
  }

  /**
   * Replaces a constant that data nodes read (a weight, a LayerNorm scale). Values folded from it
   * at load would go stale, so those are refused.
   */
  setConstant(tensor: string, value: tf.Tensor): void {
    const old = this.constants.get(tensor);
    if (!old) throw new Error(`'${tensor}' is not a constant of this program`);
    if (!tf.util.arraysEqual(old.shape, value.shape)) throw new Error(`setConstant('${tensor}'): shape [${value.shape}] differs from [${old.shape}]`);
    // Batch-class values are recomputed from the cache below; load-time folds are not.
    const foldedReader = this.graph.nodes.findIndex((n, i) => this.classes[i] === 'constant' && n.inputs.includes(tensor));
    if (foldedReader >= 0) throw new Error(`'${tensor}' feeds folded node '${this.graph.nodes[foldedReader].name}'; it cannot change after load`);
    old.dispose();
    this.constants.set(tensor, tf.keep(value.clone()));
    this.modifiedConstants.add(tensor);
    this.clearBatchCache();
  }

  /** Constants replaced by setConstant since load (the exporter writes their new values). */
  get changedConstants(): ReadonlySet<string> {
    return this.modifiedConstants;
  }

  /** Runs the whole graph. Returns the graph outputs; call inside tf.tidy (or dispose them). */
  run(feeds: Readonly<Record<string, tf.Tensor>>, options: RunOptions = {}): Record<string, tf.Tensor> {
    for (const input of this.graph.inputs) {
      if (!feeds[input.name]) throw new Error(`missing input '${input.name}'`);
    }
    const env = new Map(Object.entries(feeds));
    this.execute(this.dataNodes, env, options);
    return Object.fromEntries(this.outputNames.map((name) => [name, this.valueOf(name, env)]));
  }

  /**
   * Runs a subset of data nodes (a block) from given tensors; the nodes may read those tensors,
   * constants and batch-size values, nothing else.
   */
  runNodes(nodeIndices: readonly number[], feeds: ReadonlyMap<string, tf.Tensor>, outputs: readonly string[], options: RunOptions = {}): tf.Tensor[] {
    const env = new Map(feeds);
    this.execute(nodeIndices, env, options);
    return outputs.map((name) => this.valueOf(name, env));
  }

  /**
   * Runs nodes (without hooks) and returns every tensor they read or wrote: fed, computed,
   * batch-class and constant values alike. Constants stay owned by the program.
   */
  traceNodes(nodeIndices: readonly number[], feeds: ReadonlyMap<string, tf.Tensor>): Map<string, tf.Tensor> {
    const env = new Map(feeds);
    this.execute(nodeIndices, env, {});
    const batchValues = this.batchValuesFor(env);
    for (const index of nodeIndices) {
      for (const name of this.graph.nodes[index].inputs) {
        if (name && !env.has(name)) env.set(name, batchValues?.get(name) ?? this.valueOf(name, env));
      }
    }
    return env;
  }

  /**
   * Probes the graph to turn Shape nodes on activations into functions of the batch size and to
   * learn each activation's batch axis and shape. A dynamic batch is probed at sizes 1 and 2;
   * a batch fixed by the export (`fixedBatch`) once, and its shapes are constants.
   * `inputShape` is the input's shape without the batch dimension.
   */
  resolveBatchShapes(inputName: string, inputShape: readonly number[], fixedBatch?: number): void {
    const probe = (n: number): { shapes: Map<string, number[]>; shapeValues: Map<number, number[]> } => {
      const shapes = new Map<string, number[]>([[inputName, [n, ...inputShape]]]);
      const shapeValues = new Map<number, number[]>();
      tf.tidy(() => {
        const env = new Map([[inputName, tf.zeros([n, ...inputShape])]]);
        this.execute(this.dataNodes, env, {}, (index, outputsOfNode) => {
          outputsOfNode.forEach((t, k) => {
            const name = this.graph.nodes[index].outputs[k];
            if (name) shapes.set(name, t.shape);
          });
          if (this.graph.nodes[index].opType === 'Shape') shapeValues.set(index, Array.from(outputsOfNode[0].dataSync()));
        });
      });
      return { shapes, shapeValues };
    };
    if (fixedBatch !== undefined) {
      const { shapes, shapeValues } = probe(fixedBatch);
      for (const [index, values] of shapeValues) this.templates.set(index, { offset: values, perBatch: values.map(() => 0) });
      for (const [name, shape] of shapes) {
        const leadingBatch = shape[0] === fixedBatch;
        if (leadingBatch) this.batchAxes.set(name, 0);
        this.shapesAtBatchOne.set(name, leadingBatch ? [1, ...shape.slice(1)] : shape);
      }
    } else {
      const [one, two] = [probe(1), probe(2)];
      for (const [index, values] of one.shapeValues) {
        const perBatch = values.map((v, i) => (two.shapeValues.get(index) ?? values)[i] - v);
        if (perBatch.every((k) => k >= 0)) this.templates.set(index, { offset: values.map((v, i) => v - perBatch[i]), perBatch });
      }
      for (const [name, shape] of one.shapes) {
        this.shapesAtBatchOne.set(name, shape);
        const other = two.shapes.get(name) ?? shape;
        const axis = shape.findIndex((d, i) => other[i] !== d);
        if (axis >= 0) this.batchAxes.set(name, axis);
      }
    }
    this.classifyBatchNodes();
  }

  private valueOf(name: string, env: Map<string, tf.Tensor>): tf.Tensor {
    const value = env.get(name) ?? this.constants.get(name);
    if (!value) throw new Error(`tensor '${name}' is not available here (not fed, not computed, not constant)`);
    return value;
  }

  private execute(
    order: readonly number[],
    env: Map<string, tf.Tensor>,
    options: RunOptions,
    onNode?: (index: number, outputs: tf.Tensor[]) => void,
  ): void {
    const batchValues = this.batchValuesFor(env);
    const nodes = this.graph.nodes;
    for (const index of order) {
      const node = nodes[index];
      const hook = options.hooks?.get(node.name);
      const inputs = node.inputs.map((name, i) => {
        if (!name) return undefined;
        const value = env.get(name) ?? batchValues?.get(name) ?? this.valueOf(name, env);
        return hook ? hook(i, value) : value;
      });
      const outputs = this.runKernel(index, inputs);
      node.outputs.forEach((name, k) => name && outputs[k] && env.set(name, outputs[k]));
      onNode?.(index, outputs);
    }
  }

  private runKernel(index: number, inputs: (tf.Tensor | undefined)[]): tf.Tensor[] {
    const node = this.graph.nodes[index];
    try {
      return kernelFor(node)(inputs, { node, opset: this.graph.opset });
    } catch (err) {
      const message = (err as Error).message;
      if (message.includes(`'${node.name}'`)) throw err;
      const shapes = inputs.map((t) => (t ? `[${t.shape}]` : '-')).join(', ');
      throw new Error(`${node.opType} node '${node.name}' failed on inputs ${shapes}: ${message}`);
    }
  }

  /** Batch-class values for the batch size of the fed activations, from the cache when possible. */
  private batchValuesFor(env: Map<string, tf.Tensor>): Map<string, tf.Tensor> | undefined {
    if (this.templates.size === 0) return undefined;
    let batchSize: number | undefined;
    for (const [name, t] of env) {
      const axis = this.batchAxes.get(name);
      if (axis !== undefined) {
        batchSize = t.shape[axis];
        break;
      }
    }
    if (batchSize === undefined) return undefined;
    const cached = this.batchCache.get(batchSize);
    if (cached) return cached;
    const n = batchSize;
    const values = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      for (const index of this.liveOrder) {
        if (this.classes[index] !== 'batch') continue;
        const node = this.graph.nodes[index];
        const template = this.templates.get(index);
        const outputs = template
          ? [tf.tensor1d(template.offset.map((c, i) => c + template.perBatch[i] * n), 'int32')]
          : this.runKernel(index, node.inputs.map((name) => (name ? values.get(name) ?? this.constants.get(name) : undefined)));
        node.outputs.forEach((name, k) => name && outputs[k] && values.set(name, tf.keep(outputs[k])));
      }
    });
    if (this.batchCache.size >= BATCH_CACHE_LIMIT) this.clearBatchCache();
    this.batchCache.set(n, values);
    return values;
  }

  private clearBatchCache(): void {
    for (const values of this.batchCache.values()) for (const t of values.values()) t.dispose();
    this.batchCache.clear();
  }

  private topologicalLiveOrder(): number[] {
    const nodes = this.graph.nodes;
    const live = new Set<number>();
    const stack = this.outputNames.map((o) => this.producers.get(o)).filter((i): i is number => i !== undefined);
    while (stack.length) {
      const i = stack.pop() as number;
      if (live.has(i)) continue;
      live.add(i);
      for (const input of nodes[i].inputs) {
        const p = this.producers.get(input);
        if (p !== undefined) stack.push(p);
      }
    }
    const available = new Set<string>([...this.graph.initializers.keys(), ...this.inputNames, '']);
    const order: number[] = [];
    const pending = [...live].sort((a, b) => a - b);
    while (pending.length) {
      const ready = pending.findIndex((i) => nodes[i].inputs.every((name) => available.has(name)));
      if (ready < 0) {
        const stuck = nodes[pending[0]];
        const missing = stuck.inputs.filter((name) => !available.has(name));
        throw new Error(`node '${stuck.name}' (${stuck.opType}) reads ${missing.map((m) => `'${m}'`).join(', ')}, which no node, input or initializer provides`);
      }
      const [index] = pending.splice(ready, 1);
      order.push(index);
      nodes[index].outputs.forEach((o) => available.add(o));
    }
    return order;
  }

  private foldConstants(): void {
    for (const index of this.liveOrder) {
      const node = this.graph.nodes[index];
      if (!node.inputs.every((name) => name === '' || this.constants.has(name))) continue;
      this.classes[index] = 'constant';
      tf.tidy(() => {
        const outputs = this.runKernel(index, node.inputs.map((name) => (name ? this.constants.get(name) : undefined)));
        node.outputs.forEach((name, k) => name && outputs[k] && this.constants.set(name, tf.keep(outputs[k])));
      });
    }
  }

  private classifyBatchNodes(): void {
    const batchTensors = new Set<string>();
    for (const index of this.liveOrder) {
      if (this.classes[index] !== 'data') continue;
      const node = this.graph.nodes[index];
      const fromBatch = this.templates.has(index)
        || node.inputs.every((name) => name === '' || this.constants.has(name) || batchTensors.has(name));
      if (!fromBatch) continue;
      this.classes[index] = 'batch';
      node.outputs.forEach((o) => batchTensors.add(o));
    }
    this.clearBatchCache();
  }
}
