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

  dispose(): void {
    for (const q of this.quantizers.values()) q.dispose();
    this.quantizers.clear();
  }
}
