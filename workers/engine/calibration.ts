/**
 * Min/max calibration: running minima and maxima of every site operand (weights directly,
 * activations over the calibration batches), reduced to the operand's granularity.
 */
import * as tf from '@tensorflow/tfjs';
import { OperandHook } from './program';
import { QuantizedModel, operandKey, parameterShape } from './simulation';
import { minMaxParameters, UniformQuantizer } from './quantizer';
import { OperandSpec } from './sites';

interface Range {
  min: tf.Tensor;
  max: tf.Tensor;
}

/** Axes reduced for an operand: all but its own-scale axis (the batch axis is always reduced). */
function reducedAxes(operand: OperandSpec, rank: number): number[] {
  return Array.from({ length: rank }, (_, i) => i).filter((i) => i !== operand.axis);
}

function rangeOf(value: tf.Tensor, operand: OperandSpec): Range {
  const axes = reducedAxes(operand, value.rank);
  const shape = parameterShape(operand);
  return { min: tf.reshape(tf.min(value, axes), shape), max: tf.reshape(tf.max(value, axes), shape) };
}

export class MinMaxObserver {
  private readonly ranges = new Map<string, Range>();

  constructor(private readonly model: QuantizedModel) {}

  /** Hooks that record activation ranges and pass values through unchanged. */
  hooks(): Map<string, OperandHook> {
    const hooks = new Map<string, OperandHook>();
    for (const site of this.model.sites) {
      const activations = new Map(site.operands.filter((o) => o.role === 'activation').map((o) => [o.inputIndex, o]));
      hooks.set(this.model.program.nodes[site.nodeIndex].name, (inputIndex, value) => {
        const operand = activations.get(inputIndex);
        if (operand) this.record(operandKey(site, operand), rangeOf(value, operand));
        return value;
      });
    }
    return hooks;
  }

  private record(key: string, range: Range): void {
    const old = this.ranges.get(key);
    const merged = old ? { min: tf.minimum(old.min, range.min), max: tf.maximum(old.max, range.max) } : range;
    tf.keep(merged.min);
    tf.keep(merged.max);
    if (old) {
      old.min.dispose();
      old.max.dispose();
      range.min.dispose();
      range.max.dispose();
    }
    this.ranges.set(key, merged);
  }

  /** Sets every site's quantizers from the observed ranges (weights from their values). */
  applyTo(model: QuantizedModel): void {
    for (const site of model.sites) {
      for (const operand of site.operands) {
        const key = operandKey(site, operand);
        tf.tidy(() => {
          let range = this.ranges.get(key);
          if (operand.role === 'weight') {
            const weight = model.program.constantValue(operand.tensor) as tf.Tensor;
            range = rangeOf(weight, operand);
          }
          if (!range) throw new Error(`no calibration data reached operand ${key}`);
          const { scale, zeroPoint } = minMaxParameters(range.min, range.max, operand.bits);
          model.setQuantizer(site, operand, new UniformQuantizer(operand.bits, scale, zeroPoint));
        });
      }
    }
  }

  dispose(): void {
    for (const r of this.ranges.values()) {
      r.min.dispose();
      r.max.dispose();
    }
    this.ranges.clear();
  }
}
