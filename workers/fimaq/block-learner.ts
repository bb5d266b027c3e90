/**
 * The state learned for one block during reconstruction: AdaRound roundings and activation scales.
 * Their values live in host arrays, which the optimizer updates whichever runtime computed the
 * gradients; `syncVariables` copies them into the tfjs variables the simulated model reads
 * through operand transforms.
 */
import * as tf from '@tensorflow/tfjs';
import { Block } from '../engine/blocks';
import { OnnxProgram } from '../engine/program';
import { QuantizedModel } from '../engine/simulation';
import { OperandSpec, QuantSite } from '../engine/sites';
import { AdaRoundWeight } from './adaround';
import { LearnedActivation } from './learned-activation';

export interface LearnedParameter {
  key: string;
  variable: tf.Variable;
  host: Float32Array;
}

export interface LearnerSettings {
  dropProbability: number;
  expandAttentionScales: boolean;
}

const hostCopy = (key: string, variable: tf.Variable): LearnedParameter => ({ key, variable, host: Float32Array.from(variable.dataSync()) });

export class BlockLearner {
  readonly weights = new Map<string, { site: QuantSite; operand: OperandSpec; rounding: AdaRoundWeight }>();
  readonly activations = new Map<string, { site: QuantSite; operand: OperandSpec; learned: LearnedActivation }>();
  readonly roundingParameters: LearnedParameter[] = [];
  readonly scaleParameters: LearnedParameter[] = [];
  /** Seed of the current tfjs training iteration's QDrop; undefined means deterministic quantization. */
  dropSeed: number | undefined;

  constructor(private readonly model: QuantizedModel, block: Block, settings: LearnerSettings) {
    for (const site of block.sites) {
      for (const operand of site.operands) {
        const key = `${site.id}#${operand.inputIndex}`;
        const quantizer = model.quantizerOf(site, operand);
        if (operand.role === 'weight') {
          const rounding = new AdaRoundWeight(model.program.constantValue(operand.tensor) as tf.Tensor, quantizer, key);
          this.weights.set(key, { site, operand, rounding });
          this.roundingParameters.push(hostCopy(key, rounding.alpha));
          model.setTransform(site, operand, () => rounding.soft());
        } else {
          const expand = settings.expandAttentionScales && operand.granularity === 'per-head'
            ? { axis: operand.shape.length - 2, size: operand.shape[operand.shape.length - 2] }
            : undefined;
          const learned = new LearnedActivation(quantizer, operand.bits, key, expand);
          this.activations.set(key, { site, operand, learned });
          this.scaleParameters.push(hostCopy(key, learned.scale));
          const salt = this.activations.size;
          model.setTransform(site, operand, (x) => learned.apply(x, this.dropSeed === undefined ? undefined : this.dropSeed + salt, settings.dropProbability));
        }
      }
    }
  }

  get parameters(): LearnedParameter[] {
    return [...this.roundingParameters, ...this.scaleParameters];
  }

  /** Copies the host values into the tfjs variables (before the simulated model runs the block). */
  syncVariables(): void {
    for (const { variable, host } of this.parameters) variable.assign(tf.tensor(host, variable.shape));
  }

  regularizer(beta: number): tf.Scalar {
    return tf.tidy(() => tf.addN([...this.weights.values()].map((w) => w.rounding.regularizer(beta))) as tf.Scalar);
  }

  /** Hard rounding baked into the program's weights, learned scales into the quantizers; transforms removed. */
  finish(program: OnnxProgram): void {
    this.syncVariables();
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
