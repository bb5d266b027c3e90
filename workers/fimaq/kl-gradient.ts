/**
 * Gradients of KL(softmax(z_fp/T) ‖ softmax(z_q/T)) with respect to a block's output, where z_q is
 * the rest of the model (full precision) run from that output. They weigh the block's output
 * errors in the Fisher losses.
 */
import * as tf from '@tensorflow/tfjs';

/** From a block's output to the model's logits. */
export type RestOfModel = (blockOutput: tf.Tensor) => tf.Tensor;

export interface KlTarget {
  /** softmax(z_fp / T) of the same samples: [B, K]. */
  probabilities: tf.Tensor;
  temperature: number;
}

/** |∂KL/∂Y| per sample, flattened to [B, N]; KL summed over the batch so each sample's gradient is its own. */
export function klGradientMagnitude(rest: RestOfModel, blockOutput: tf.Tensor, target: KlTarget): tf.Tensor {
  return tf.tidy(() => {
    const kl = (y: tf.Tensor): tf.Scalar => {
      const logQ = tf.logSoftmax(tf.div(rest(y), target.temperature));
      const logP = tf.log(tf.maximum(target.probabilities, 1e-12));
      return tf.sum(tf.mul(target.probabilities, tf.sub(logP, logQ)));
    };
    const gradient = tf.grad(kl)(blockOutput);
    return tf.reshape(tf.abs(gradient), [blockOutput.shape[0], -1]);
  });
}
