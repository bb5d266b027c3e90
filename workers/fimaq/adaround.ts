/**
 * AdaRound (docs/fimaq.md): a weight's rounding is learned. W̃ = s·(clamp(⌊W/s⌋ + h(α) + z, 0, L−1) − z),
 * h(α) = clamp(1.2·sigmoid(α) − 0.1, 0, 1), α initialized so that h(α) is the fractional part of
 * W/s (the soft weight then equals W inside the grid's range). Hard rounding: h = [α ≥ 0].
 */
import * as tf from '@tensorflow/tfjs';
import { Tape } from '../engine/autodiff/tape';
import { attributeProto } from '../engine/onnx/model-builder';
import { levels, UniformQuantizer } from '../engine/quantizer';

const STRETCH_LOW = -0.1;
const STRETCH_HIGH = 1.1;

export class AdaRoundWeight {
  readonly alpha: tf.Variable;
  private readonly floor: tf.Tensor;
  private readonly scale: tf.Tensor;
  private readonly zeroPoint: tf.Tensor;
  private readonly maxCode: number;

  constructor(weight: tf.Tensor, quantizer: UniformQuantizer, name: string) {
    this.scale = tf.keep(quantizer.scale.clone());
    this.zeroPoint = tf.keep(quantizer.zeroPoint.clone());
    this.maxCode = levels(quantizer.bits) - 1;
    const [floor, alpha] = tf.tidy(() => {
      const scaled = tf.div(weight, this.scale);
      const floored = tf.floor(scaled);
      const rest = tf.sub(scaled, floored);
      // sigmoid(α) = (rest − low) / (high − low)  ⇔  α = −log((high − low) / (rest − low) − 1)
      const alphaInit = tf.neg(tf.log(tf.sub(tf.div(STRETCH_HIGH - STRETCH_LOW, tf.sub(rest, STRETCH_LOW)), 1)));
      return [floored, alphaInit];
    });
    this.floor = floor;
    this.alpha = tf.variable(alpha, true, `adaround/${name}`);
    alpha.dispose();
  }

  /** h(α) in [0, 1]. */
  softRounding(): tf.Tensor {
    return tf.tidy(() => tf.clipByValue(tf.add(tf.mul(tf.sigmoid(this.alpha), STRETCH_HIGH - STRETCH_LOW), STRETCH_LOW), 0, 1));
  }

  private dequantize(rounding: tf.Tensor): tf.Tensor {
    return tf.mul(tf.sub(tf.clipByValue(tf.add(tf.add(this.floor, rounding), this.zeroPoint), 0, this.maxCode), this.zeroPoint), this.scale);
  }

  /** The weight with soft rounding (differentiable in α). */
  soft(): tf.Tensor {
    return tf.tidy(() => this.dequantize(this.softRounding()));
  }

  /** The weight with hard rounding: what the model keeps after reconstruction. */
  hard(): tf.Tensor {
    return tf.tidy(() => this.dequantize(tf.cast(tf.greaterEqual(this.alpha, 0), 'float32')));
  }

  /** Σ (1 − |2h − 1|^β): pushes every h(α) to 0 or 1 as β anneals down. */
  regularizer(beta: number): tf.Scalar {
    return tf.tidy(() => tf.sum(tf.sub(1, tf.pow(tf.abs(tf.sub(tf.mul(this.softRounding(), 2), 1)), beta))));
  }

  /**
   * The soft weight written into a training graph that reads α from the graph tensor `alpha`.
   * Returns the weight and h(α), which the regularizer reads.
   */
  graphForm(tape: Tape, alpha: string): { weight: string; rounding: string } {
    const { b } = tape;
    const shape = this.alpha.shape;
    const host = (hint: string, t: tf.Tensor): string => b.floats(hint, t.shape, t.dataSync());
    const [floor, scale, zeroPoint] = [host('adaround/floor', this.floor), host('adaround/scale', this.scale), host('adaround/zero_point', this.zeroPoint)];
    const stretched = tape.op('Add', [tape.op('Mul', [tape.op('Sigmoid', [alpha], shape), b.scalar(STRETCH_HIGH - STRETCH_LOW)], shape), b.scalar(STRETCH_LOW)], shape);
    const rounding = tape.op('Clip', [stretched, b.scalar(0), b.scalar(1)], shape);
    const codes = tape.op('Clip', [tape.op('Add', [tape.op('Add', [floor, rounding], shape), zeroPoint], shape), b.scalar(0), b.scalar(this.maxCode)], shape);
    return { weight: tape.op('Mul', [tape.op('Sub', [codes, zeroPoint], shape), scale], shape), rounding };
  }

  /**
   * `regularizer` in a training graph: Σ (1 − |2h − 1|^β) over h(α) of `shape`, β a graph tensor.
   * One node whose gradient reuses d^(β−1) from the forward pass (a Pow over every weight is the
   * costliest element-wise op of a step).
   */
  static graphRegularizer(tape: Tape, rounding: string, shape: number[], beta: string): string {
    const distance = tape.op('Abs', [tape.op('Sub', [tape.op('Mul', [rounding, tape.b.scalar(2)], shape), tape.b.scalar(1)], shape)], shape);
    const output = tape.b.fresh('rounding_regularizer');
    let lowered: string | undefined; // d^(β−1)
    tape.push({
      inputs: [distance, beta],
      outputs: [output],
      emit(b) {
        lowered = b.op('Pow', [distance, b.op('Sub', [beta, b.scalar(1)], [])], shape);
        const terms = b.op('Sub', [b.scalar(1), b.op('Mul', [distance, lowered], shape)], shape);
        b.addNode({ opType: 'ReduceSum', name: output, input: [terms], output: [output], attribute: [attributeProto('keepdims', 0)] }, [[]]);
      },
      backward([dy], wanted, b) {
        if (!wanted[0] || !dy || !lowered) return [undefined, undefined];
        return [b.op('Mul', [lowered, b.op('Neg', [b.op('Mul', [dy, beta], [])], [])], shape), undefined];
      },
    });
    return output;
  }

  dispose(): void {
    [this.alpha, this.floor, this.scale, this.zeroPoint].forEach((t) => t.dispose());
  }
}
