/**
 * Chooses the export form a quantized model is served in by measuring it: every candidate form
 * is exported, run by onnxruntime on the same probe batch in interleaved rounds, and the fastest
 * whose outputs match the default form's is kept. The forms compute the same integer codes
 * (workers/engine/README.md, Export), so a mismatch means a runtime fault, not a trade-off.
 */
import * as ort from 'onnxruntime-node';
import type { QuantizedModel } from '../simulation';
import { exportQdq, type ExportMetadata, type ExportOptions } from './qdq';

export type ExportForm = NonNullable<ExportOptions['form']>;

/** The forms tried, the reference first: 'ort' is the one whose agreement with the engine the tests hold. */
export const EXPORT_FORMS: readonly ExportForm[] = ['ort', 'qdq'];

/** Mean cosine between a candidate's output rows and the reference's below which it is refused. */
export const MIN_OUTPUT_COSINE = 0.99;

export interface ProbeBatch {
  /** NCHW float32, as the model's input takes it. */
  data: Float32Array;
  dims: number[];
}

export interface FormChoice {
  form: ExportForm;
  onnx: Uint8Array;
  /** One sentence: which form, how fast against the others and the parent, and why. */
  reason: string;
  /** Images per timed run. */
  batch: number;
  /** Median milliseconds per run of each candidate (and of `fp32`, the parent, when given). */
  msPerBatch: Record<string, number>;
  /** Mean cosine of each candidate's output rows with the reference form's. */
  outputCosine: Record<string, number>;
}

export interface FormChoiceOptions {
  /** The full-precision parent, timed beside the candidates so the reason can say what the variant gains. */
  parent?: Uint8Array;
  /** Timed rounds (median taken); default 15. */
  rounds?: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

function meanRowCosine(a: Float32Array, b: Float32Array, rows: number): number {
  const width = a.length / rows;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    let dot = 0, na = 0, nb = 0;
    for (let i = r * width; i < (r + 1) * width; i++) {
      dot += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    total += na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb || 1e-30);
  }
  return total / rows;
}

async function runOnce(session: ort.InferenceSession, probe: ProbeBatch): Promise<{ ms: number; output: Float32Array }> {
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', probe.data, probe.dims) };
  const started = performance.now();
  const out = await session.run(feeds);
  const ms = performance.now() - started;
  return { ms, output: Float32Array.from(out[session.outputNames[0]].data as Float32Array) };
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

export async function chooseExportForm(
  quantized: QuantizedModel,
  metadata: ExportMetadata,
  probe: ProbeBatch,
  options: FormChoiceOptions = {},
): Promise<FormChoice> {
  const candidates = EXPORT_FORMS.map((form) => ({ form, onnx: exportQdq(quantized, metadata, { form }) }));
  const timed = [...candidates.map((c) => ({ name: c.form as string, onnx: c.onnx })), ...(options.parent ? [{ name: 'fp32', onnx: options.parent }] : [])];
  // One thread per session, as a serving session shares the CPU with its neighbours; the same
  // graph optimizations the serving sessions use.
  const sessions = await Promise.all(timed.map((t) => ort.InferenceSession.create(t.onnx, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' })));
  try {
    const outputs: Float32Array[] = [];
    for (const session of sessions) outputs.push((await runOnce(session, probe)).output);
    const samples: number[][] = timed.map(() => []);
    for (let r = 0; r < (options.rounds ?? 15); r++) {
      for (const [i, session] of sessions.entries()) samples[i].push((await runOnce(session, probe)).ms);
    }
    const msPerBatch = Object.fromEntries(timed.map((t, i) => [t.name, round(median(samples[i]), 3)]));
    const rows = probe.dims[0];
    const outputCosine = Object.fromEntries(candidates.map((c, i) => [c.form, round(meanRowCosine(outputs[0], outputs[i], rows), 5)]));
    const accepted = candidates.filter((c) => outputCosine[c.form] >= MIN_OUTPUT_COSINE);
    const best = accepted.reduce((a, b) => (msPerBatch[b.form] < msPerBatch[a.form] ? b : a));
    const others = candidates.filter((c) => c !== best)
      .map((c) => `'${c.form}' ${msPerBatch[c.form]} ms${accepted.includes(c) ? '' : ` (refused: output cosine ${outputCosine[c.form]} < ${MIN_OUTPUT_COSINE})`}`);
    const parent = options.parent
      ? `; the FP32 parent ${msPerBatch.fp32} ms, so this variant runs at ${round(msPerBatch[best.form] / msPerBatch.fp32, 2)}x of it`
      : '';
    const reason = `'${best.form}' is the fastest form whose outputs match: ${msPerBatch[best.form]} ms per batch of ${rows} `
      + `(median of ${options.rounds ?? 15} interleaved runs, one onnxruntime thread) against ${others.join(', ')}${parent}`;
    return { form: best.form, onnx: best.onnx, reason, batch: rows, msPerBatch, outputCosine };
  } finally {
    await Promise.all(sessions.map((s) => s.release()));
  }
}
