/**
 * Stage 2: block-wise reconstruction (FIMAQ.md). For each block in model order, AdaRound weights
 * and learned activation scales are trained so that the quantized block's output stays close to
 * the full-precision one under the chosen loss, with QDrop; then rounding is made hard, the
 * learned weights are written into the program (so the exporter stores their codes) and the
 * learned scales into the block's quantizers.
 */
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from '../engine/backend';
import { Block } from '../engine/blocks';
import { OnnxProgram } from '../engine/program';
import { QuantizedModel } from '../engine/simulation';
import { OperandSpec, QuantSite } from '../engine/sites';
import { AdaRoundWeight } from './adaround';
import { Adam, cosineDecay } from './adam';
import { klGradientMagnitude, RestOfModel } from './kl-gradient';
import { LearnedActivation } from './learned-activation';
import { LogitsFunction } from './logits';
import { DplrFisher, klDivergence, LOSSES, LossDefinition } from './losses';
import { ReconstructionLoss } from './options';
import { SeededRandom } from './random';

const WEIGHT_LR = 1e-3;
const SCALE_LR = 4e-5;
const ROUNDING_WEIGHT = 0.01;
const WARMUP = 0.2;
const BETA_START = 20;
const BETA_END = 2;
/** Images on which a block's output MSE is reported before and after reconstruction. */
const REPORT_IMAGES = 256;

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
  onIteration?: (progress: IterationProgress) => void | Promise<void>;
}

export interface IterationProgress {
  block: Block;
  blockIndex: number;
  iteration: number;
  loss: number;
}

export interface BlockReport {
  name: string;
  kind: string;
  /** Output MSE of the quantized block (quantized input) against the full-precision output, before and after. */
  mseBefore: number;
  mseAfter: number;
  firstLoss?: number;
  lastLoss?: number;
  seconds: number;
  snapshotSeconds: number;
  iterationsPerSecond: number;
}

/** The reconstruction set flowing through the blocks: full-precision and quantized block inputs. */
interface BlockInputs {
  fp: tf.Tensor;
  quantized: tf.Tensor;
}

/** The state learned for one block, swapped into the simulated model through operand transforms. */
class BlockLearner {
  readonly weights = new Map<string, { site: QuantSite; operand: OperandSpec; rounding: AdaRoundWeight }>();
  readonly activations = new Map<string, { site: QuantSite; operand: OperandSpec; learned: LearnedActivation }>();
  /** Seed of the current training iteration's QDrop; undefined means deterministic quantization. */
  dropSeed: number | undefined;

  constructor(private readonly model: QuantizedModel, block: Block, settings: ReconstructionSettings) {
    for (const site of block.sites) {
      for (const operand of site.operands) {
        const key = `${site.id}#${operand.inputIndex}`;
        const quantizer = model.quantizerOf(site, operand);
        if (operand.role === 'weight') {
          const rounding = new AdaRoundWeight(model.program.constantValue(operand.tensor) as tf.Tensor, quantizer, key);
          this.weights.set(key, { site, operand, rounding });
          model.setTransform(site, operand, () => rounding.soft());
        } else {
          const expand = settings.expandAttentionScales && operand.granularity === 'per-head'
            ? { axis: operand.shape.length - 2, size: operand.shape[operand.shape.length - 2] }
            : undefined;
          const learned = new LearnedActivation(quantizer, operand.bits, key, expand);
          this.activations.set(key, { site, operand, learned });
          const salt = this.activations.size;
          model.setTransform(site, operand, (x) => learned.apply(x, this.dropSeed === undefined ? undefined : this.dropSeed + salt, settings.dropProbability));
        }
      }
    }
  }

  get roundingVariables(): tf.Variable[] {
    return [...this.weights.values()].map((w) => w.rounding.alpha);
  }

  get scaleVariables(): tf.Variable[] {
    return [...this.activations.values()].map((a) => a.learned.scale);
  }

  regularizer(beta: number): tf.Scalar {
    return tf.tidy(() => tf.addN([...this.weights.values()].map((w) => w.rounding.regularizer(beta))) as tf.Scalar);
  }

  /** Hard rounding baked into the program's weights, learned scales into the quantizers; transforms removed. */
  finish(program: OnnxProgram): void {
    for (const { site, operand, rounding } of this.weights.values()) {
      const hard = rounding.hard();
      program.setConstant(operand.tensor, hard);
      hard.dispose();
      this.model.setTransform(site, operand, undefined);
      rounding.dispose();
    }
    for (const { site, operand, learned } of this.activations.values()) {
      this.model.setQuantizer(site, operand, learned.toQuantizer());
      this.model.setTransform(site, operand, undefined);
      learned.dispose();
    }
  }
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
      if (block.sites.length > 0) reports.push(await this.reconstruct(block, index, target));
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

  private restOfModel(index: number): RestOfModel {
    const block = this.blocks[index];
    const nodes = this.blocks.slice(index + 1).flatMap((b) => b.nodes);
    return (y) => this.settings.logits(nodes.length === 0 ? y : this.model.program.runNodes(nodes, new Map([[block.output, y]]), [this.settings.outputName])[0]);
  }

  private async reconstruct(block: Block, index: number, target: tf.Tensor): Promise<BlockReport> {
    const started = performance.now();
    const { settings, model } = this;
    const mseBefore = outputMse(model, block, this.inputs, target, settings.batchSize);
    const isHead = index === this.blocks.length - 1 && block.kind !== 'transformer';
    const loss: LossDefinition | undefined = isHead ? undefined : LOSSES[settings.loss];
    const count = target.shape[0];
    const rest = this.restOfModel(index);
    const learner = new BlockLearner(model, block, settings);
    const rounding = new Adam(learner.roundingVariables, () => WEIGHT_LR);
    const scales = new Adam(learner.scaleVariables, cosineDecay(SCALE_LR, settings.iters));
    const random = new SeededRandom(settings.seed * 1000003 + index);
    const snapshotRank = loss?.snapshotRank?.(settings.rank);
    const fisher = snapshotRank ? new DplrFisher(snapshotRank) : undefined;
    const snapshotEvery = snapshotRank ? Math.max(1, Math.floor(settings.iters / snapshotRank)) : 0;
    const sampleGradients = settings.loss === 'fisher_brecq' && !isHead ? this.sampleGradients(block, rest) : undefined;
    let normalizers: number[] | undefined;
    let snapshotSeconds = 0;
    let firstLoss: number | undefined;
    let lastLoss: number | undefined;
    try {
      for (let iteration = 0; iteration < settings.iters; iteration++) {
        if (fisher && iteration % snapshotEvery === 0) {
          const snapshotStarted = performance.now();
          this.snapshot(block, rest, target, fisher, learner);
          snapshotSeconds += (performance.now() - snapshotStarted) / 1000;
          normalizers = undefined;
        }
        const indices = random.sample(count, settings.batchSize);
        const inputSeed = random.seed();
        learner.dropSeed = random.seed();
        const beta = roundingBeta(iteration, settings.iters);
        const { value, grads } = tf.variableGrads(() => {
          const fpInput = gatherRows(this.inputs.fp, indices);
          const mixed = tf.where(tf.less(tf.randomUniform(fpInput.shape, 0, 1, 'float32', inputSeed), settings.dropProbability), gatherRows(this.inputs.quantized, indices), fpInput);
          const output = runBlockWith(model, block, mixed, true);
          let reconstruction: tf.Scalar;
          if (!loss) {
            reconstruction = klDivergence(gatherRows(this.headTargets, indices), settings.logits(output));
          } else {
            const terms = loss.terms({
              output: flatten(output),
              target: flatten(gatherRows(target, indices)),
              fisher,
              sampleGradients: sampleGradients ? gatherRows(sampleGradients, indices) : undefined,
            });
            normalizers ??= terms.map((t) => Math.max(t.dataSync()[0], 1e-30));
            const norms = normalizers;
            reconstruction = tf.addN(terms.map((t, i) => tf.mul(t, loss.weights[i] / norms[i]))) as tf.Scalar;
          }
          return beta === undefined ? reconstruction : tf.add(reconstruction, tf.mul(learner.regularizer(beta), ROUNDING_WEIGHT));
        }, [...learner.roundingVariables, ...learner.scaleVariables]);
        rounding.apply(grads);
        scales.apply(grads);
        lastLoss = value.dataSync()[0];
        firstLoss ??= lastLoss;
        [value, ...Object.values(grads)].forEach((t) => t.dispose());
        learner.dropSeed = undefined;
        await settings.onIteration?.({ block, blockIndex: index, iteration: iteration + 1, loss: lastLoss });
      }
    } finally {
      learner.finish(model.program);
      rounding.dispose();
      scales.dispose();
      fisher?.dispose();
      sampleGradients?.dispose();
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      name: block.name,
      kind: block.kind,
      mseBefore,
      mseAfter: outputMse(model, block, this.inputs, target, settings.batchSize),
      firstLoss,
      lastLoss,
      seconds,
      snapshotSeconds,
      iterationsPerSecond: settings.iters / Math.max(seconds - snapshotSeconds, 1e-9),
    };
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
