/**
 * Asymmetric uniform quantization (docs/fimaq.md): q = clamp(round(x / s) + z, 0, 2^b - 1),
 * x̂ = (q - z) · s. Rounding passes gradients straight through, so scales, zero points and
 * the inputs all receive gradients and tf.grad works through a fake-quantized program.
 */
import * as tf from '@tensorflow/tfjs';
import { unbroadcast } from './autodiff/gradient-rules';
import { Tape } from './autodiff/tape';
import { Shape } from './onnx/model-builder';
import { onnx } from './onnx/proto';

/** round(x) forward, identity backward (straight-through estimator). */
export const roundStraightThrough: (x: tf.Tensor) => tf.Tensor = tf.customGrad(
  ((x: tf.Tensor) => ({ value: tf.round(x), gradFunc: (dy: tf.Tensor) => dy })) as unknown as Parameters<typeof tf.customGrad>[0],
) as (x: tf.Tensor) => tf.Tensor;

export function levels(bits: number): number {
  return 2 ** bits;
}

/**
 * Fake quantization with broadcastable scale and zero point (zero point holds integral values).
 * One differentiable op with its gradient written out (the autodiff of the same formula takes ~30
 * small kernels per call, most of a reconstruction step's elementwise work): with v = x/s,
 * t = round(v) + z, q = clip(t, 0, L−1) and m = [q = t] (inside the grid, bounds included):
 * ∂/∂x = m, ∂/∂s = (q − z) − m·v (straight-through rounding), summed over broadcast axes. The
 * zero point is an integer grid offset and receives no gradient.
 */
export function fakeQuantize(x: tf.Tensor, scale: tf.Tensor, zeroPoint: tf.Tensor, bits: number): tf.Tensor {
  const maxCode = levels(bits) - 1;
  const op = tf.customGrad(((value: tf.Tensor, s: tf.Tensor, save: tf.GradSaveFunc) => {
    const scaled = tf.div(value, s);
    const shifted = tf.add(tf.round(scaled), zeroPoint);
    const q = tf.clipByValue(shifted, 0, maxCode);
    const centered = tf.sub(q, zeroPoint);
    save([scaled, shifted, q, centered]);
    return {
      value: tf.mul(centered, s),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [v, t, clipped, c] = saved;
        const inside = tf.cast(tf.equal(clipped, t), 'float32');
        const dx = tf.mul(dy, inside);
        const perElement = tf.mul(dy, tf.sub(c, tf.mul(inside, v)));
        const axes = tf.backend_util.getReductionAxes(s.shape, perElement.shape);
        const ds = tf.reshape(axes.length > 0 ? tf.sum(perElement, axes, true) : perElement, s.shape);
        return [dx, ds];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (value: tf.Tensor, s: tf.Tensor) => tf.Tensor;
  return tf.tidy(() => op(x, scale));
}

/** The integer codes q of x (no gradient): what the exporter stores for weights. */
export function quantizeToIntegers(x: tf.Tensor, scale: tf.Tensor, zeroPoint: tf.Tensor, bits: number): tf.Tensor {
  return tf.tidy(() => tf.clipByValue(tf.add(tf.round(tf.div(x, scale)), zeroPoint), 0, levels(bits) - 1));
}

/** Scale and zero point that map [min, max] (widened to contain 0) onto the 2^b levels. */
export function minMaxParameters(min: tf.Tensor, max: tf.Tensor, bits: number): { scale: tf.Tensor; zeroPoint: tf.Tensor } {
  return tf.tidy(() => {
    const lo = tf.minimum(min, 0);
    const hi = tf.maximum(max, 0);
    const scale = tf.maximum(tf.div(tf.sub(hi, lo), levels(bits) - 1), 1e-8);
    const zeroPoint = tf.clipByValue(tf.round(tf.neg(tf.div(lo, scale))), 0, levels(bits) - 1);
    return { scale, zeroPoint };
  });
}

/**
 * One quantizer: bit width plus trainable scale and zero point shaped to broadcast against the
 * operand (e.g. [C, 1] for a per-row weight, [1, H, 1, 1] for per-head attention inputs).
 */
export class UniformQuantizer {
  readonly scale: tf.Variable;
  readonly zeroPoint: tf.Variable;

  constructor(readonly bits: number, scale: tf.Tensor, zeroPoint: tf.Tensor) {
    this.scale = tf.variable(scale, true);
    this.zeroPoint = tf.variable(zeroPoint, false);
  }

  apply(x: tf.Tensor): tf.Tensor {
    return fakeQuantize(x, this.scale, this.zeroPoint, this.bits);
  }

  dispose(): void {
    this.scale.dispose();
    this.zeroPoint.dispose();
  }
}

/**
 * The same fake quantization written into a training graph, as one node with the same gradient:
 * `scale` and `zeroPoint` are tensors of the graph that broadcast against `x`.
 */
export function fakeQuantizeNode(tape: Tape, x: string, scale: string, zeroPoint: string, bits: number): string {
  const output = tape.b.fresh('fake_quantized');
  const shape = (): Shape => tape.b.shapeOf(x);
  let saved: { scaled: string; shifted: string; clipped: string; centered: string } | undefined;
  tape.push({
    inputs: [x, scale],
    outputs: [output],
    emit(b) {
      const scaled = b.op('Div', [x, scale], shape());
      const shifted = b.op('Add', [b.op('Round', [scaled], shape()), zeroPoint], shape());
      const clipped = b.op('Clip', [shifted, b.scalar(0), b.scalar(levels(bits) - 1)], shape());
      const centered = b.op('Sub', [clipped, zeroPoint], shape());
      b.addNode({ opType: 'Mul', name: output, input: [centered, scale], output: [output] }, [shape()]);
      saved = { scaled, shifted, clipped, centered };
    },
    backward([dy], wanted, b) {
      if (!saved || !dy) return [undefined, undefined];
      const inside = b.op('Cast', [b.op('Equal', [saved.clipped, saved.shifted], undefined)], shape(), { to: onnx.TensorProto.DataType.FLOAT });
      const dx = wanted[0] ? b.op('Mul', [dy, inside], shape()) : undefined;
      if (!wanted[1]) return [dx, undefined];
      const perElement = b.op('Mul', [dy, b.op('Sub', [saved.centered, b.op('Mul', [inside, saved.scaled], shape())], shape())], shape());
      return [dx, unbroadcast(b, perElement, shape(), b.shapeOf(scale))];
    },
  });
  return output;
}
