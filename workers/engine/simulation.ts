/**
 * The simulated quantized model: one UniformQuantizer per site operand, applied through the
 * program's operand hooks. Later methods (FIMA-Q) swap an operand's transform (AdaRound weights,
 * QDrop) without touching the program.
 */
import * as tf from '@tensorflow/tfjs';
import { OperandHook, OnnxProgram } from './program';
import { UniformQuantizer } from './quantizer';
import { OperandSpec, QuantSite } from './sites';

export type OperandTransform = (value: tf.Tensor) => tf.Tensor;

export function operandKey(site: QuantSite, operand: OperandSpec): string {
  return `${site.id}#${operand.inputIndex}`;
}

/** Broadcast shape of one operand's scale: 1 everywhere except the axis with its own scales. */
export function parameterShape(operand: OperandSpec): number[] {
  return operand.shape.map((d, i) => (i === operand.axis ? d : 1));
}

/**
 * What calibration leaves in a model: the program constants it rewrote (reparameterized
 * LayerNorms and Linears) and every operand's quantizer, as copies independent of the model.
 */
export interface CalibratedState {
  constants: Map<string, tf.Tensor>;
  quantizers: Map<string, { bits: number; scale: tf.Tensor; zeroPoint: tf.Tensor }>;
  dispose(): void;
}

export class QuantizedModel {
  readonly quantizers = new Map<string, UniformQuantizer>();
  private readonly transforms = new Map<string, OperandTransform>();

  constructor(readonly program: OnnxProgram, readonly sites: readonly QuantSite[]) {}

  quantizerOf(site: QuantSite, operand: OperandSpec): UniformQuantizer {
    const q = this.quantizers.get(operandKey(site, operand));
    if (!q) throw new Error(`operand ${operandKey(site, operand)} has no quantizer yet; calibrate first`);
    return q;
  }

  setQuantizer(site: QuantSite, operand: OperandSpec, quantizer: UniformQuantizer): void {
    const key = operandKey(site, operand);
    this.quantizers.get(key)?.dispose();
    this.quantizers.set(key, quantizer);
  }

  /** Overrides how one operand is quantized (e.g. learned rounding); undefined restores the quantizer. */
  setTransform(site: QuantSite, operand: OperandSpec, transform: OperandTransform | undefined): void {
    const key = operandKey(site, operand);
    if (transform) this.transforms.set(key, transform);
    else this.transforms.delete(key);
  }

  /** Operand hooks that fake-quantize every site; pass to program.run / runNodes. */
  hooks(): Map<string, OperandHook> {
    const hooks = new Map<string, OperandHook>();
    for (const site of this.sites) {
      const byInput = new Map(site.operands.map((op): [number, OperandTransform] => [
        op.inputIndex,
        (x) => (this.transforms.get(operandKey(site, op)) ?? ((v: tf.Tensor) => this.quantizerOf(site, op).apply(v)))(x),
      ]));
      hooks.set(this.program.nodes[site.nodeIndex].name, (inputIndex, value) => byInput.get(inputIndex)?.(value) ?? value);
    }
    return hooks;
  }

  /** A copy of the calibrated state, to put into another model of the same graph with `restore`. */
  snapshot(): CalibratedState {
    const constants = new Map([...this.program.changedConstants].map((name): [string, tf.Tensor] => [name, tf.keep((this.program.constantValue(name) as tf.Tensor).clone())]));
    const quantizers = new Map([...this.quantizers].map(([key, q]) => [key, { bits: q.bits, scale: tf.keep(q.scale.clone()), zeroPoint: tf.keep(q.zeroPoint.clone()) }]));
    return {
      constants,
      quantizers,
      dispose: () => {
        constants.forEach((t) => t.dispose());
        quantizers.forEach((q) => [q.scale, q.zeroPoint].forEach((t) => t.dispose()));
      },
    };
  }

  /** Makes this model calibrated as the snapshot's was (same graph, freshly loaded). */
  restore(state: CalibratedState): void {
    for (const [name, value] of state.constants) this.program.setConstant(name, value);
    for (const [key, q] of state.quantizers) {
      this.quantizers.get(key)?.dispose();
      this.quantizers.set(key, new UniformQuantizer(q.bits, q.scale, q.zeroPoint));
    }
  }

  dispose(): void {
    for (const q of this.quantizers.values()) q.dispose();
    this.quantizers.clear();
  }
}
