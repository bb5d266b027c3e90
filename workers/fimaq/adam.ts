/**
 * Adam over host arrays with a learning rate that may change every step (cosine decay). The
 * parameters live on the host whichever runtime computes the gradients (onnxruntime or tfjs); one
 * pass of plain float arithmetic per parameter is cheaper than dispatching tensor ops for it.
 */
const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-8;

/** One Adam update of `p` in place; `step` is lr / (1 − β₁ᵗ), `inverse2` is 1 / (1 − β₂ᵗ). */
function update(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, step: number, inverse2: number): void {
  for (let j = 0; j < p.length; j++) {
    const gj = g[j];
    const mj = BETA1 * m[j] + (1 - BETA1) * gj;
    const vj = BETA2 * v[j] + (1 - BETA2) * gj * gj;
    m[j] = mj;
    v[j] = vj;
    p[j] -= (step * mj) / (Math.sqrt(vj * inverse2) + EPSILON);
  }
}

export class Adam {
  private readonly moments: { m: Float32Array; v: Float32Array }[];
  private step = 0;

  constructor(private readonly parameters: readonly Float32Array[], private readonly learningRate: (step: number) => number) {
    this.moments = parameters.map((p) => ({ m: new Float32Array(p.length), v: new Float32Array(p.length) }));
  }

  /** Applies one update in place; `grads[i]` belongs to `parameters[i]`. */
  apply(grads: readonly Float32Array[]): void {
    this.step++;
    const step = this.learningRate(this.step - 1) / (1 - BETA1 ** this.step);
    const inverse2 = 1 / (1 - BETA2 ** this.step);
    for (let i = 0; i < this.parameters.length; i++) update(this.parameters[i], grads[i], this.moments[i].m, this.moments[i].v, step, inverse2);
  }
}

/** lr·(1 + cos(π·t/T))/2: from lr at step 0 to 0 at step T. */
export function cosineDecay(lr: number, steps: number): (step: number) => number {
  return (step) => (lr * (1 + Math.cos((Math.PI * Math.min(step, steps)) / steps))) / 2;
}
