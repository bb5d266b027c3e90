/**
 * An activation quantizer whose scale is learned during reconstruction, with QDrop: while
 * training, each element keeps its full-precision value with probability 1 − p.
 */
import * as tf from '@tensorflow/tfjs';
import { Tape } from '../engine/autodiff/tape';
import { fakeQuantize, fakeQuantizeNode, UniformQuantizer } from '../engine/quantizer';

const MIN_SCALE = 1e-8;

export class LearnedActivation {
  readonly scale: tf.Variable;
  private readonly zeroPoint: tf.Tensor;

  /** `expandAxis`: give every slice of that operand axis its own copy of the initial scale. */
  constructor(quantizer: UniformQuantizer, readonly bits: number, name: string, expandAxis?: { axis: number; size: number }) {
    const expand = (t: tf.Tensor): tf.Tensor => {
      if (!expandAxis) return t.clone();
      const reps = t.shape.map((_, i) => (i === expandAxis.axis ? expandAxis.size : 1));
      return tf.tile(t, reps);
    };
    const [scale, zeroPoint] = tf.tidy(() => [expand(quantizer.scale), expand(quantizer.zeroPoint)]);
    this.scale = tf.variable(scale, true, `activation-scale/${name}`);
    this.zeroPoint = zeroPoint;
    scale.dispose();
  }

  /** Quantized x; with `dropSeed`, QDrop keeps x where a uniform draw exceeds `keepQuantized`. */
  apply(x: tf.Tensor, dropSeed?: number, keepQuantized = 1): tf.Tensor {
    return tf.tidy(() => {
      const quantized = fakeQuantize(x, tf.maximum(this.scale, MIN_SCALE), this.zeroPoint, this.bits);
      if (dropSeed === undefined || keepQuantized >= 1) return quantized;
      return tf.where(tf.less(tf.randomUniform(x.shape, 0, 1, 'float32', dropSeed), keepQuantized), quantized, x);
    });
  }

  /**
   * `apply` written into a training graph: the scale is the graph tensor `scale`; with `drop`,
   * QDrop draws from onnxruntime's generator seeded with `drop.seed` (a new draw every run).
   */
  graphForm(tape: Tape, x: string, xShape: number[], scale: string, drop?: { seed: number; keepQuantized: number }): string {
    const { b } = tape;
    const zeroPoint = b.floats('activation/zero_point', this.zeroPoint.shape, this.zeroPoint.dataSync());
    const quantized = fakeQuantizeNode(tape, x, tape.op('Max', [scale, b.scalar(MIN_SCALE)], this.scale.shape), zeroPoint, this.bits);
    if (!drop || drop.keepQuantized >= 1) return quantized;
    const draw = tape.opaque('RandomUniformLike', [x], xShape, { seed: drop.seed }, ['seed']);
    const keep = tape.opaque('Less', [draw, b.scalar(drop.keepQuantized)]);
    return tape.op('Where', [keep, quantized, x], xShape);
  }

  /** The learned quantizer for the simulated model and the exporter. */
  toQuantizer(): UniformQuantizer {
    const scale = tf.tidy(() => tf.maximum(this.scale, MIN_SCALE));
    const quantizer = new UniformQuantizer(this.bits, scale, this.zeroPoint);
    scale.dispose();
    return quantizer;
  }

  dispose(): void {
    this.scale.dispose();
    this.zeroPoint.dispose();
  }
}
