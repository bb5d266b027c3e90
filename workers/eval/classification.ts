import { InputError } from '../data/errors';

/** Top-1 and top-5 accuracy, accumulated batch by batch. */
export interface ClassificationMetrics {
  task: 'classification';
  images: number;
  top1: number;
  top5: number;
}

export class ClassificationAccumulator {
  private count = 0;
  private hits1 = 0;
  private hits5 = 0;

  /** `logits` holds `labels.length` rows of `classes` scores. */
  add(logits: Float32Array, classes: number, labels: Int32Array): void {
    for (let row = 0; row < labels.length; row++) {
      if (labels[row] < 0 || labels[row] >= classes) {
        throw new InputError(`label ${labels[row]} is out of range for a model with ${classes} outputs`);
      }
      const base = row * classes;
      const truth = logits[base + labels[row]];
      if (Number.isNaN(truth)) continue;
      // The label's rank is the number of classes scoring strictly higher (ties favour the label).
      let higher = 0;
      for (let c = 0; c < classes && higher < 5; c++) if (logits[base + c] > truth) higher++;
      if (higher === 0) this.hits1++;
      if (higher < 5) this.hits5++;
    }
    this.count += labels.length;
  }

  result(): ClassificationMetrics {
    const n = Math.max(1, this.count);
    return { task: 'classification', images: this.count, top1: this.hits1 / n, top5: this.hits5 / n };
  }
}
