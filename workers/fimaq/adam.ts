/** Adam over a fixed set of variables with a learning rate that may change every step (cosine decay). */
import * as tf from '@tensorflow/tfjs';

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-8;

export class Adam {
  private readonly moments: { m: tf.Variable; v: tf.Variable }[];
  private step = 0;

  constructor(private readonly variables: readonly tf.Variable[], private readonly learningRate: (step: number) => number) {
    this.moments = variables.map((v) => ({ m: tf.variable(tf.zerosLike(v), false), v: tf.variable(tf.zerosLike(v), false) }));
  }

  /** Applies one update; `grads` by variable name (as tf.variableGrads returns them). */
  apply(grads: tf.NamedTensorMap): void {
    this.step++;
    const lr = this.learningRate(this.step - 1);
    const correction1 = 1 - BETA1 ** this.step;
    const correction2 = 1 - BETA2 ** this.step;
    tf.tidy(() => {
      this.variables.forEach((variable, i) => {
        const grad = grads[variable.name];
        if (!grad) return;
        const { m, v } = this.moments[i];
        m.assign(tf.add(tf.mul(m, BETA1), tf.mul(grad, 1 - BETA1)));
        v.assign(tf.add(tf.mul(v, BETA2), tf.mul(tf.square(grad), 1 - BETA2)));
        const update = tf.div(tf.div(m, correction1), tf.add(tf.sqrt(tf.div(v, correction2)), EPSILON));
        variable.assign(tf.sub(variable, tf.mul(update, lr)));
      });
    });
  }

  dispose(): void {
    for (const { m, v } of this.moments) {
      m.dispose();
      v.dispose();
    }
  }
}

/** lr·(1 + cos(π·t/T))/2: from lr at step 0 to 0 at step T. */
export function cosineDecay(lr: number, steps: number): (step: number) => number {
  return (step) => (lr * (1 + Math.cos((Math.PI * Math.min(step, steps)) / steps))) / 2;
}
