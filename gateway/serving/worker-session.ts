import { Worker } from 'node:worker_threads';
import { VariantFailedError } from './serving-errors';
import { datatypeInfo, datatypeOfOrtType, isDatatype, type Tensor, type TensorArray } from '../tensors/tensor';

export interface SessionOptions {
  /** 0 lets onnxruntime choose. */
  intraOpThreads: number;
  interOpThreads: number;
  executionProviders: string[];
  /**
   * Scheduling niceness of the session's threads (0 = normal, 19 = only idle CPU). Shadow
   * sessions run niced so that on a busy machine they yield the cores to primary requests.
   */
  nice: number;
}

export interface SessionRunResult {
  outputs: Tensor[];
  /** Time inside onnxruntime's run, measured in the worker. */
  computeMs: number;
}

interface WireTensor {
  name: string;
  type: string;
  dims: number[];
  data: TensorArray;
}

type WorkerMessage =
  | { kind: 'ready' }
  | { kind: 'load-failed'; message: string }
  | { kind: 'result'; id: number; outputs: WireTensor[]; computeMs: number }
  | { kind: 'error'; id: number; message: string };

/*
 * onnxruntime-node runs a session synchronously on the calling thread, so running it on the main
 * thread would stall every HTTP request (and every shadow would delay the next primary). Each
 * session therefore lives in its own worker thread. The worker's source is plain JavaScript kept
 * here, so it runs the same from ts sources (tests) and from the compiled build.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
// On Linux niceness belongs to the thread (elsewhere it would lower the whole gateway), and
// onnxruntime's pool threads, created below, inherit it.
if (workerData.nice > 0 && process.platform === 'linux') require('node:os').setPriority(workerData.nice);
const ort = require(workerData.ortPath);
const firstLine = (error) => String((error && error.message) || error).split('\\n')[0];
ort.InferenceSession.create(workerData.modelPath, workerData.sessionOptions).then(
  (session) => {
    parentPort.on('message', async (message) => {
      if (message.kind === 'release') {
        await session.release();
        process.exit(0);
      }
      try {
        const feeds = {};
        for (const t of message.inputs) feeds[t.name] = new ort.Tensor(t.type, t.data, t.dims);
        const started = performance.now();
        const results = await session.run(feeds, message.outputNames);
        const computeMs = performance.now() - started;
        const outputs = message.outputNames.map((name) => {
          const r = results[name];
          return { name, type: r.type, dims: Array.from(r.dims), data: r.data };
        });
        parentPort.postMessage({ kind: 'result', id: message.id, outputs, computeMs }, outputs.map((o) => o.data.buffer));
      } catch (error) {
        parentPort.postMessage({ kind: 'error', id: message.id, message: firstLine(error) });
      }
    });
    parentPort.postMessage({ kind: 'ready' });
  },
  (error) => parentPort.postMessage({ kind: 'load-failed', message: firstLine(error) }),
);
`;

const ORT_PATH = require.resolve('onnxruntime-node');

/** Arrays that own their whole buffer can be moved to the worker instead of copied. */
function ownsBuffer(data: TensorArray): boolean {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
}

/**
 * One onnxruntime session in a worker thread. `run` takes ownership of the input arrays (they
 * are transferred, not copied); callers keep a copy when they need the inputs again.
 */
export class WorkerSession {
  private readonly pending = new Map<number, { resolve: (r: SessionRunResult) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: string | undefined;
  private onDrained: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly label: string,
  ) {
    worker.on('message', (message: WorkerMessage) => this.settle(message));
    worker.on('error', (error) => this.fail(`worker error: ${error.message}`));
    worker.on('exit', (code) => this.fail(`worker exited with code ${code}`));
  }

  static open(modelPath: string, options: SessionOptions, label: string): Promise<WorkerSession> {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        ortPath: ORT_PATH,
        modelPath,
        nice: options.nice,
        sessionOptions: {
          graphOptimizationLevel: 'all',
          executionProviders: options.executionProviders,
          ...(options.intraOpThreads > 0 ? { intraOpNumThreads: options.intraOpThreads } : {}),
          ...(options.interOpThreads > 0 ? { interOpNumThreads: options.interOpThreads } : {}),
        },
      },
    });
    return new Promise((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        if (message.kind === 'ready') {
          resolve(new WorkerSession(worker, label));
        } else {
          void worker.terminate();
          reject(new VariantFailedError(`${label}: onnxruntime could not load the model: ${message.kind === 'load-failed' ? message.message : 'unexpected message'}`));
        }
      };
      const onError = (error: Error) => {
        worker.off('message', onMessage);
        reject(new VariantFailedError(`${label}: session worker failed to start: ${error.message}`));
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
    });
  }

  get alive(): boolean {
    return this.failure === undefined;
  }

  run(inputs: Tensor[], outputNames: string[]): Promise<SessionRunResult> {
    if (this.failure !== undefined) return Promise.reject(new VariantFailedError(`${this.label}: ${this.failure}`));
    const id = this.nextId++;
    const wire: WireTensor[] = inputs.map((t) => ({ name: t.name, type: datatypeInfo(t.datatype)?.ort ?? t.datatype, dims: t.shape, data: t.data }));
    const transfer = wire.filter((t) => ownsBuffer(t.data)).map((t) => t.data.buffer as ArrayBuffer);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ kind: 'run', id, inputs: wire, outputNames }, transfer);
    });
  }

  /** Ends the worker once it has answered everything sent so far. */
  async release(): Promise<void> {
    if (this.failure !== undefined) return;
    this.failure = 'session released';
    if (this.pending.size > 0) await new Promise<void>((resolve) => (this.onDrained = resolve));
    await new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ kind: 'release' });
    });
  }

  private settle(message: WorkerMessage): void {
    if (message.kind !== 'result' && message.kind !== 'error') return;
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    this.pending.delete(message.id);
    if (this.pending.size === 0) this.onDrained?.();
    if (message.kind === 'error') {
      waiter.reject(new VariantFailedError(`${this.label} failed to run: ${message.message}`));
      return;
    }
    const outputs: Tensor[] = [];
    for (const o of message.outputs) {
      const datatype = datatypeOfOrtType(o.type);
      if (!isDatatype(datatype)) {
        waiter.reject(new VariantFailedError(`${this.label} answered output "${o.name}" of type ${o.type}, which the protocol data plane cannot serve`));
        return;
      }
      outputs.push({ name: o.name, datatype, shape: o.dims, data: o.data });
    }
    waiter.resolve({ computeMs: message.computeMs, outputs });
  }

  private fail(reason: string): void {
    if (this.failure === undefined) this.failure = reason;
    for (const waiter of this.pending.values()) waiter.reject(new VariantFailedError(`${this.label}: ${reason}`));
    this.pending.clear();
  }
}
