/**
 * Adam over host arrays with a learning rate that may change every step (cosine decay). The
 * parameters live on the host whichever runtime computes the gradients (onnxruntime or tfjs).
 */
const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-8;

export class Adam {
  private readonly moments: { m: Float32Array; v: Float32Array }[];
  private step = 0;

  constructor(private readonly parameters: readonly Float32Array[], private readonly learningRate: (step: number) => number) {
    this.moments = parameters.map((p) => ({ m: new Float32Array(p.length), v: new Float32Array(p.length) }));
  }

  /** Applies one update in place; `grads[i]` belongs to `parameters[i]`. */
  apply(grads: readonly ArrayLike<number>[]): void {
    this.step++;
    const lr = this.learningRate(this.step - 1);
    const correction1 = 1 - BETA1 ** this.step;
    const correction2 = 1 - BETA2 ** this.step;
    this.parameters.forEach((p, i) => {
      const grad = grads[i];
      const { m, v } = this.moments[i];
      for (let j = 0; j < p.length; j++) {
        const g = grad[j];
        m[j] = BETA1 * m[j] + (1 - BETA1) * g;
        v[j] = BETA2 * v[j] + (1 - BETA2) * g * g;
        p[j] -= (lr * (m[j] / correction1)) / (Math.sqrt(v[j] / correction2) + EPSILON);
      }
    });
  }
}

/** lr·(1 + cos(π·t/T))/2: from lr at step 0 to 0 at step T. */
export function cosineDecay(lr: number, steps: number): (step: number) => number {
  return (step) => (lr * (1 + Math.cos((Math.PI * Math.min(step, steps)) / steps))) / 2;
}
