/** A seeded generator for what JS decides (batch indices, per-iteration tfjs seeds): runs repeat for a seed. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = (seed ^ 0x9e3779b9) >>> 0;
  }

  /** Uniform in [0, 1) (mulberry32). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A seed for a tfjs random op. */
  seed(): number {
    return Math.floor(this.next() * 2 ** 31);
  }

  /** `count` distinct indices from 0..n-1 (partial Fisher–Yates). */
  sample(n: number, count: number): Int32Array {
    const pool = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < count; i++) {
      const j = i + Math.floor(this.next() * (n - i));
      [pool[i], pool[j]] = [pool[j], pool[i]];
    }
    return pool.slice(0, count);
  }
}
