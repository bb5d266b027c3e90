/**
 * Stage 2: block-wise reconstruction (docs/fimaq.md). For each block in model order, AdaRound weights
 * and learned activation scales are trained so that the quantized block's output stays close to
 * the full-precision one under the chosen loss, with QDrop; then rounding is made hard, the
 * learned weights are written into the program (so the exporter stores their codes) and the
 * learned scales into the block's quantizers. A block whose output error came out worse than
 * before reconstruction keeps its pre-reconstruction weights and quantizers instead.
 */
import * as tf from '@tensorflow/tfjs';
import { NoGradientRule } from '../engine/autodiff/gradient-rules';
import { gatherRows } from '../engine/backend';
import { Block } from '../engine/blocks';
import { UniformQuantizer } from '../engine/quantizer';
import { QuantizedModel } from '../engine/simulation';
import { OperandSpec, QuantSite } from '../engine/sites';
import { Adam, cosineDecay } from './adam';
import { BlockLearner } from './block-learner';
import { klGradientMagnitude, RestOfModel } from './kl-gradient';
import { LogitsFunction } from './logits';
import { DplrFisher, klDivergence, LOSSES, LossDefinition } from './losses';
import { HostRows, OnnxFisherSnapshot, OnnxTrainingStep } from './onnx-step';
import { ReconstructionLoss } from './options';
import { SeededRandom } from './random';
import { buildSnapshotGraph, buildTrainingGraph } from './training-graph';

const WEIGHT_LR = 1e-3;
const SCALE_LR = 4e-5;
const ROUNDING_WEIGHT = 0.01;
const WARMUP = 0.2;
const BETA_START = 20;
const BETA_END = 2;
/** Images on which a block's output MSE is reported before and after reconstruction. */
const REPORT_IMAGES = 256;

type Runtime = 'onnxruntime' | 'tfjs';

/** A host copy of a tensor's values (the wasm heap may move). */
const host = (t: tf.Tensor): Float32Array => Float32Array.from(t.dataSync());

export interface ReconstructionSettings {
  loss: ReconstructionLoss;
  iters: number;
  batchSize: number;
  rank: number;
  seed: number;
  temperature: number;
  dropProbability: number;
  expandAttentionScales: boolean;
  logits: LogitsFunction;
  outputName: string;
  /**
   * Where training steps and Fisher snapshots run: onnxruntime training graphs when the block's
   * ops have gradient rules (the default), or always the tfjs simulation.
   */
  trainingRuntime?: Runtime;
  /** onnxruntime intra-op threads (0: onnxruntime's default, every core). */
  threads?: number;
  onIteration?: (progress: IterationProgress) => void | Promise<void>;
  /** Called when a block is done, with its report (whether its learned parameters were kept). */
  onBlockDone?: (report: BlockReport, blockIndex: number) => void | Promise<void>;
}

export interface IterationProgress {
  block: Block;
  blockIndex: number;
  iteration: number;
  /** The objective minimized: task loss plus the weighted rounding regularizer. */
  loss: number;
  /** The reconstruction (or head KL) loss alone, the figure that should fall. */
  taskLoss: number;
  /**
   * The rounding regularizer's weighted share of `loss`; 0 during warm-up. It switches on after
   * warm-up and grows as β anneals, which is why `loss` may rise while `taskLoss` falls.
   */
  regularizer: number;
}

export interface BlockReport {
  name: string;
  kind: string;
  /** Which runtime computed the training steps (and the Fisher snapshots, for the losses that take them). */
  runtime: Runtime;
  snapshotRuntime?: Runtime;
  /** Why a part ran on the tfjs simulation instead of an onnxruntime training graph. */
  tfjsBecause?: string;
  /** Output MSE of the quantized block (quantized input) against the full-precision output, before and after. */
  mseBefore: number;
  /** After reconstruction, or the same as mseBefore when the block kept its earlier parameters. */
  mseAfter: number;
  /** mseAfter as reconstruction left it, when it was worse than mseBefore and so undone. */
  mseRejected?: number;
  /** Whether the learned parameters were kept (false: the block kept its pre-reconstruction ones). */
  kept: boolean;
  firstLoss?: number;
  lastLoss?: number;
  firstTaskLoss?: number;
  lastTaskLoss?: number;
  lastRegularizer?: number;
  seconds: number;
  snapshotSeconds: number;
  /** Training iterations per second, Fisher snapshots excluded. */
  iterationsPerSecond: number;
}

/** The reconstruction set flowing through the blocks: full-precision and quantized block inputs. */
interface BlockInputs {
  fp: tf.Tensor;
  quantized: tf.Tensor;
}

function runInBatches(count: number, batchSize: number, work: (start: number, size: number) => tf.Tensor): tf.Tensor {
  const parts: tf.Tensor[] = [];
  for (let start = 0; start < count; start += batchSize) parts.push(work(start, Math.min(batchSize, count - start)));
  const joined = parts.length === 1 ? parts[0] : tf.concat(parts, 0);
  if (parts.length > 1) parts.forEach((p) => p.dispose());
  return joined;
}

function runBlockWith(model: QuantizedModel, block: Block, input: tf.Tensor, quantize: boolean): tf.Tensor {
  return model.program.runNodes(block.nodes, new Map([[block.input, input]]), [block.output], quantize ? { hooks: model.hooks() } : {})[0];
}

/** The block's output on the whole set, in batches (full precision or quantized). */
function blockOutputs(model: QuantizedModel, block: Block, inputs: tf.Tensor, batchSize: number, quantize: boolean): tf.Tensor {
  return runInBatches(inputs.shape[0], batchSize, (start, size) => tf.tidy(() => runBlockWith(model, block, tf.slice(inputs, start, size), quantize)));
}

function outputMse(model: QuantizedModel, block: Block, inputs: BlockInputs, target: tf.Tensor, batchSize: number): number {
  const count = Math.min(REPORT_IMAGES, target.shape[0]);
  const error = tf.tidy(() => {
    const output = blockOutputs(model, block, tf.slice(inputs.quantized, 0, count), batchSize, true);
    return tf.mean(tf.squaredDifference(output, tf.slice(target, 0, count)));
  });
  const value = error.dataSync()[0];
  error.dispose();
  return value;
}

function flatten(t: tf.Tensor): tf.Tensor {
  return tf.reshape(t, [t.shape[0], -1]);
}

/** β of the rounding regularizer at an iteration: off (undefined) during warm-up, then 20 → 2 linearly. */
export function roundingBeta(iteration: number, iters: number): number | undefined {
  const start = WARMUP * iters;
  if (iteration < start) return undefined;
  const progress = (iteration - start) / Math.max(1, iters - start);
  return BETA_END + (BETA_START - BETA_END) * Math.max(0, 1 - progress);
}

/** Builds an onnxruntime graph, or says why the block's ops cannot be differentiated there. */
async function onnxOrReason<T>(build: () => Promise<T>): Promise<{ value?: T; reason?: string }> {
  try {
    return { value: await build() };
  } catch (err) {
    if (err instanceof NoGradientRule) return { reason: err.message };
    throw err;
  }
}

/** What one block's iterations share. */
interface TrainingState {
  block: Block;
  learner: BlockLearner;
  loss: LossDefinition | undefined;
  target: tf.Tensor;
  fisher: DplrFisher | undefined;
  sampleGradients: tf.Tensor | undefined;
  /** Each loss term's value at the latest normalization point; undefined until measured. */
  normalizers: number[] | undefined;
}

/** What an iteration draws from the seeded generator. */
interface IterationDraw {
  indices: Int32Array;
  inputSeed: number;
  dropSeed: number;
  beta: number | undefined;
}

interface IterationResult {
  loss: number;
  /** The loss without the rounding regularizer. */
  taskLoss: number;
  /** In `learner.parameters` order. */
  grads: Float32Array[];
}

/** A block's weights and quantizers as they were before reconstruction, to put back if it made things worse. */
export class BlockCheckpoint {
  private readonly weights = new Map<string, tf.Tensor>();
  private readonly quantizers: { site: QuantSite; operand: OperandSpec; quantizer: UniformQuantizer }[] = [];

  constructor(private readonly model: QuantizedModel, block: Block) {
    for (const site of block.sites) {
      for (const operand of site.operands) {
        const weight = operand.role === 'weight' ? model.program.constantValue(operand.tensor) : undefined;
        if (weight) this.weights.set(operand.tensor, tf.keep(weight.clone()));
        const quantizer = model.quantizerOf(site, operand);
        const [scale, zeroPoint] = [quantizer.scale.clone(), quantizer.zeroPoint.clone()];
        this.quantizers.push({ site, operand, quantizer: new UniformQuantizer(quantizer.bits, scale, zeroPoint) });
        [scale, zeroPoint].forEach((t) => t.dispose());
      }
    }
  }

  restore(): void {
    for (const [tensor, value] of this.weights) this.model.program.setConstant(tensor, value);
    for (const { site, operand, quantizer } of this.quantizers) this.model.setQuantizer(site, operand, quantizer);
    this.quantizers.length = 0;
  }

  dispose(): void {
    this.weights.forEach((w) => w.dispose());
    this.quantizers.forEach(({ quantizer }) => quantizer.dispose());
  }
}

export class BlockReconstruction {
  private inputs: BlockInputs;
  /** softmax(z_fp / T) of every reconstruction image. */
  private readonly softTargets: tf.Tensor;
  /** softmax(z_fp): the head block's KL target. */
  private readonly headTargets: tf.Tensor;

  constructor(
    private readonly model: QuantizedModel,
    private readonly blocks: readonly Block[],
    images: tf.Tensor,
    fpOutputs: tf.Tensor,
    private readonly settings: ReconstructionSettings,
  ) {
    this.inputs = { fp: tf.keep(images.clone()), quantized: tf.keep(images.clone()) };
    this.softTargets = tf.tidy(() => tf.softmax(tf.div(settings.logits(fpOutputs), settings.temperature)));
    this.headTargets = tf.tidy(() => tf.softmax(settings.logits(fpOutputs)));
  }

  async run(): Promise<BlockReport[]> {
    const reports: BlockReport[] = [];
    for (const [index, block] of this.blocks.entries()) {
      const target = blockOutputs(this.model, block, this.inputs.fp, this.settings.batchSize, false);
      if (block.sites.length > 0) {
        const report = await this.reconstruct(block, index, target);
        reports.push(report);
        await this.settings.onBlockDone?.(report, index);
      }
      const quantized = blockOutputs(this.model, block, this.inputs.quantized, this.settings.batchSize, true);
      this.inputs.fp.dispose();
      this.inputs.quantized.dispose();
      this.inputs = { fp: target, quantized };
    }
    return reports;
  }

  dispose(): void {
    [this.inputs.fp, this.inputs.quantized, this.softTargets, this.headTargets].forEach((t) => t.dispose());
  }

  private restNodes(index: number): number[] {
    return this.blocks.slice(index + 1).flatMap((b) => b.nodes);
  }

  private restOfModel(index: number): RestOfModel {
    const block = this.blocks[index];
    const nodes = this.restNodes(index);
    return (y) => this.settings.logits(nodes.length === 0 ? y : this.model.program.runNodes(nodes, new Map([[block.output, y]]), [this.settings.outputName])[0]);
  }

  private async reconstruct(block: Block, index: number, target: tf.Tensor): Promise<BlockReport> {
    const started = performance.now();
    const { settings, model } = this;
    const mseBefore = outputMse(model, block, this.inputs, target, settings.batchSize);
    const checkpoint = new BlockCheckpoint(model, block);
    const isHead = index === this.blocks.length - 1 && block.kind !== 'transformer';
    const loss: LossDefinition | undefined = isHead ? undefined : LOSSES[settings.loss];
    const count = target.shape[0];
    const rest = this.restOfModel(index);
    const learner = new BlockLearner(model, block, settings);
    const rounding = new Adam(learner.roundingParameters.map((p) => p.host), () => WEIGHT_LR);
    const scales = new Adam(learner.scaleParameters.map((p) => p.host), cosineDecay(SCALE_LR, settings.iters));
    const random = new SeededRandom(settings.seed * 1000003 + index);
    const snapshotRank = loss?.snapshotRank?.(settings.rank);
    const fisher = snapshotRank ? new DplrFisher(snapshotRank) : undefined;
    const snapshotEvery = snapshotRank ? Math.max(1, Math.floor(settings.iters / snapshotRank)) : 0;
    const sampleGradients = settings.loss === 'fisher_brecq' && !isHead ? this.sampleGradients(block, rest) : undefined;
    const state: TrainingState = { block, learner, loss, target, fisher, sampleGradients, normalizers: undefined };
    const step = settings.trainingRuntime === 'tfjs' ? { reason: 'the tfjs runtime was requested' } : await onnxOrReason(() => this.onnxStep(state, index, snapshotRank));
    const trainingRows = step.value?.rows;
    const snapshotGraph = fisher && trainingRows ? await onnxOrReason(() => this.onnxSnapshot(state, index, trainingRows)) : {};
    const [onnxStep, onnxSnapshot] = [step.value, snapshotGraph.value];
    const splitAt = learner.roundingParameters.length;
    let snapshotSeconds = 0;
    let loopSeconds = 0;
    let firstLoss: number | undefined;
    let lastLoss: number | undefined;
    let firstTaskLoss: number | undefined;
    let lastTaskLoss: number | undefined;
    let lastRegularizer: number | undefined;
    try {
      const loopStarted = performance.now();
      for (let iteration = 0; iteration < settings.iters; iteration++) {
        if (fisher && iteration % snapshotEvery === 0) {
          const snapshotStarted = performance.now();
          if (onnxSnapshot) {
            const { meanGradient, meanDelta } = await onnxSnapshot.run();
            fisher.add(tf.tensor(meanGradient), tf.tensor(meanDelta));
          } else {
            learner.syncVariables();
            this.snapshot(block, rest, target, fisher, learner);
          }
          onnxStep?.setFisher(fisher.hostFactors());
          snapshotSeconds += (performance.now() - snapshotStarted) / 1000;
          state.normalizers = undefined;
        }
        const draw: IterationDraw = { indices: random.sample(count, settings.batchSize), inputSeed: random.seed(), dropSeed: random.seed(), beta: roundingBeta(iteration, settings.iters) };
        const result = onnxStep ? await this.onnxIteration(onnxStep, state, draw) : this.tfjsIteration(state, draw);
        rounding.apply(result.grads.slice(0, splitAt));
        scales.apply(result.grads.slice(splitAt));
        if (!onnxStep) learner.syncVariables();
        lastLoss = result.loss;
        firstLoss ??= lastLoss;
        lastTaskLoss = result.taskLoss;
        firstTaskLoss ??= lastTaskLoss;
        lastRegularizer = result.loss - result.taskLoss;
        await settings.onIteration?.({ block, blockIndex: index, iteration: iteration + 1, loss: lastLoss, taskLoss: lastTaskLoss, regularizer: lastRegularizer });
      }
      loopSeconds = (performance.now() - loopStarted) / 1000;
    } finally {
      learner.finish(model.program);
      await onnxStep?.release();
      await onnxSnapshot?.release();
      fisher?.dispose();
      sampleGradients?.dispose();
    }
    const mseLearned = outputMse(model, block, this.inputs, target, settings.batchSize);
    // A careful PTQ tool never ships a block that reconstruction made worse: put back what it had.
    const kept = !(mseLearned > mseBefore);
    if (!kept) checkpoint.restore();
    checkpoint.dispose();
    const seconds = (performance.now() - started) / 1000;
    return {
      name: block.name,
      kind: block.kind,
      runtime: onnxStep ? 'onnxruntime' : 'tfjs',
      snapshotRuntime: fisher ? (onnxSnapshot ? 'onnxruntime' : 'tfjs') : undefined,
      tfjsBecause: step.reason ?? snapshotGraph.reason,
      mseBefore,
      mseAfter: kept ? mseLearned : mseBefore,
      ...(kept ? {} : { mseRejected: mseLearned }),
      kept,
      firstLoss,
      lastLoss,
      firstTaskLoss,
      lastTaskLoss,
      lastRegularizer,
      seconds,
      snapshotSeconds,
      iterationsPerSecond: settings.iters / Math.max(loopSeconds - snapshotSeconds, 1e-9),
    };
  }

  /** The block's training graph on onnxruntime, with host copies of the reconstruction set. */
  private async onnxStep(state: TrainingState, index: number, fisherRank: number | undefined): Promise<OnnxTrainingStep> {
    const { settings } = this;
    const graph = buildTrainingGraph(this.model, state.block, state.learner, this.inputs.quantized.shape.slice(1), {
      batchSize: settings.batchSize,
      dropProbability: settings.dropProbability,
      seed: settings.seed * 1000003 + index,
      objective: state.loss
        ? { kind: 'reconstruction', loss: state.loss, fisherRank, sampleGradients: state.sampleGradients !== undefined }
        : { kind: 'kl', logits: settings.logits },
    });
    return OnnxTrainingStep.create(graph, {
      quantized: host(this.inputs.quantized),
      fp: host(this.inputs.fp),
      target: host(state.loss ? state.target : this.headTargets),
      sampleGradients: state.sampleGradients ? host(state.sampleGradients) : undefined,
    }, state.learner, settings.threads);
  }

  /**
   * Fisher snapshots on onnxruntime: the block in its current soft state, the rest of the model in
   * full precision. They read the same host rows as the block's training step.
   */
  private async onnxSnapshot(state: TrainingState, index: number, rows: HostRows): Promise<OnnxFisherSnapshot> {
    const { settings } = this;
    const graph = buildSnapshotGraph(this.model, state.block, state.learner, this.inputs.quantized.shape.slice(1), {
      batchSize: settings.batchSize,
      restNodes: this.restNodes(index),
      modelOutput: settings.outputName,
      logits: settings.logits,
      temperature: settings.temperature,
    });
    return OnnxFisherSnapshot.create(graph, {
      quantized: rows.quantized,
      target: rows.target,
      softTargets: host(this.softTargets),
      count: state.target.shape[0],
    }, state.learner, settings.threads);
  }

  /**
   * One iteration on onnxruntime. After a snapshot the terms are first measured to set their
   * normalizers (an extra run), as the tfjs iteration does inside its tape.
   */
  private async onnxIteration(step: OnnxTrainingStep, state: TrainingState, draw: IterationDraw): Promise<IterationResult> {
    const inputs = (termScales: number[]) => ({ indices: draw.indices, beta: draw.beta, roundingWeight: ROUNDING_WEIGHT, termScales });
    const run = async (termScales: number[]): Promise<IterationResult> => {
      const result = await step.run(inputs(termScales));
      const taskLoss = termScales.reduce((sum, scale, i) => sum + scale * result.terms[i], 0);
      return { loss: result.loss, taskLoss, grads: result.grads };
    };
    const { loss } = state;
    if (!loss) return run([1]);
    if (!state.normalizers) {
      const probe = await step.run(inputs(loss.weights));
      state.normalizers = Array.from(probe.terms, (t) => Math.max(t, 1e-30));
    }
    const norms = state.normalizers;
    return run(loss.weights.map((w, i) => w / norms[i]));
  }

  /** One iteration on the tfjs simulation (the head block, and blocks without a training graph). */
  private tfjsIteration(state: TrainingState, draw: IterationDraw): IterationResult {
    const { settings, model } = this;
    const { block, learner, loss, target, fisher, sampleGradients } = state;
    learner.dropSeed = draw.dropSeed;
    let taskLoss = 0;
    const { value, grads } = tf.variableGrads(() => {
      const fpInput = gatherRows(this.inputs.fp, draw.indices);
      const mixed = tf.where(tf.less(tf.randomUniform(fpInput.shape, 0, 1, 'float32', draw.inputSeed), settings.dropProbability), gatherRows(this.inputs.quantized, draw.indices), fpInput);
      const output = runBlockWith(model, block, mixed, true);
      let reconstruction: tf.Scalar;
      if (!loss) {
        reconstruction = klDivergence(gatherRows(this.headTargets, draw.indices), settings.logits(output));
      } else {
        const terms = loss.terms({
          output: flatten(output),
          target: flatten(gatherRows(target, draw.indices)),
          fisher,
          sampleGradients: sampleGradients ? gatherRows(sampleGradients, draw.indices) : undefined,
        });
        state.normalizers ??= terms.map((t) => Math.max(t.dataSync()[0], 1e-30));
        const norms = state.normalizers;
        reconstruction = tf.addN(terms.map((t, i) => tf.mul(t, loss.weights[i] / norms[i]))) as tf.Scalar;
      }
      taskLoss = reconstruction.dataSync()[0];
      return draw.beta === undefined ? reconstruction : tf.add(reconstruction, tf.mul(learner.regularizer(draw.beta), ROUNDING_WEIGHT));
    }, learner.parameters.map((p) => p.variable));
    learner.dropSeed = undefined;
    const result = { loss: value.dataSync()[0], taskLoss, grads: learner.parameters.map((p) => Float32Array.from(grads[p.variable.name].dataSync())) };
    [value, ...Object.values(grads)].forEach((t) => t.dispose());
    return result;
  }

  /**
   * One Fisher snapshot over the whole reconstruction set, with blocks ≤ k quantized (block k in
   * its current soft state, deterministic): mean |∂KL/∂Y| and mean |Ŷ − Y|.
   */
  private snapshot(block: Block, rest: RestOfModel, target: tf.Tensor, fisher: DplrFisher, learner: BlockLearner): void {
    learner.dropSeed = undefined;
    const count = target.shape[0];
    const [gradientSum, deltaSum] = tf.tidy(() => {
      let g: tf.Tensor = tf.zeros([flatten(tf.slice(target, 0, 1)).shape[1] as number]);
      let d: tf.Tensor = tf.zeros(g.shape);
      for (let start = 0; start < count; start += this.settings.batchSize) {
        const size = Math.min(this.settings.batchSize, count - start);
        const [gBatch, dBatch] = tf.tidy(() => {
          const output = runBlockWith(this.model, block, tf.slice(this.inputs.quantized, start, size), true);
          const probabilities = tf.slice(this.softTargets, start, size);
          const magnitude = klGradientMagnitude(rest, output, { probabilities, temperature: this.settings.temperature });
          return [tf.sum(magnitude, 0), tf.sum(tf.abs(tf.sub(flatten(output), flatten(tf.slice(target, start, size)))), 0)];
        });
        g = tf.add(g, gBatch);
        d = tf.add(d, dBatch);
      }
      return [tf.div(g, count), tf.div(d, count)];
    });
    fisher.add(gradientSum, deltaSum);
  }

  /** Per-sample |∂KL/∂Y| with the block in full precision and earlier blocks quantized (fisher_brecq). */
  private sampleGradients(block: Block, rest: RestOfModel): tf.Tensor {
    const count = this.inputs.quantized.shape[0];
    return runInBatches(count, this.settings.batchSize, (start, size) => tf.tidy(() => {
      const output = runBlockWith(this.model, block, tf.slice(this.inputs.quantized, start, size), false);
      return klGradientMagnitude(rest, output, { probabilities: tf.slice(this.softTargets, start, size), temperature: this.settings.temperature });
    }));
  }
}
