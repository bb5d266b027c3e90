/**
 * Picks the tfjs backend once per process: native TensorFlow bindings when installed (optional
 * dependencies, GPU first), else WebAssembly with its .wasm files read from node_modules.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export type EngineBackend = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

let chosen: Promise<EngineBackend> | undefined;

function tryNative(pkg: string): boolean {
  try {
    // Registers the "tensorflow" backend as a side effect when the binding loads; optional, so resolved at run time.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(pkg);
    return true;
  } catch {
    return false;
  }
}

async function choose(preferred?: EngineBackend): Promise<EngineBackend> {
  if (preferred === 'cpu') {
    await tf.setBackend('cpu');
    return 'cpu';
  }
  if (preferred !== 'wasm') {
    for (const [pkg, name] of [['@tensorflow/tfjs-node-gpu', 'tensorflow-gpu'], ['@tensorflow/tfjs-node', 'tensorflow']] as const) {
      if (tryNative(pkg) && (await tf.setBackend('tensorflow'))) return name;
    }
  }
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  setWasmPaths(`${wasmDir}${path.sep}`);
  if (await tf.setBackend('wasm')) {
    await tf.ready();
    routeProductsToXnnpack();
    shareDataOnIdentity();
    return 'wasm';
  }
  await tf.setBackend('cpu');
  return 'cpu';
}

/** What the wasm backend keeps per tensor; used to address one matrix of a batched operand in place. */
interface WasmBackendInternals {
  dataIdMap: { get(dataId: tf.DataId): { id: number; memoryOffset: number }; delete(dataId: tf.DataId): void };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  disposeData(dataId: tf.DataId): boolean;
  wasm: { tfjs: { disposeData(id: number): void } };
}

/**
 * Multiply-adds per matrix from which a batched product runs as one XNNPACK product per batch entry
 * instead of wasm's batched loop (~1.5 GFLOP/s against ~25): 128 entries of [34,32]x[32,34] take
 * 1.8 ms instead of 4.4, of [1088,32]x[32,17] 26 ms instead of 102, 96 of [197,64]x[64,197] (ViT-S
 * attention) 37 ms instead of 268; at [17,32]x[32,17] (17-token attention) the two are even.
 */
const PER_ENTRY_MIN_MACS = 1 << 14;

/**
 * Routes wasm's BatchMatMul to XNNPACK where the stock kernel does not:
 * - a single product (batch 1) with transposeA or transposeB falls back to a naive loop about 10x
 *   slower ([544,128]x[128,384]: 2.2 ms plain, 21 ms transposed), and every matMul gradient is one:
 *   the transposed operand is transposed explicitly first (a copy far cheaper than the product);
 * - a batched product always takes the naive loop: when each matrix is large enough
 *   (PER_ENTRY_MIN_MACS) it runs as one fast-path product per batch entry, the operands addressed
 *   in place (views registered on the wasm heap, released without freeing).
 */
function routeProductsToXnnpack(): void {
  const original = tf.getKernel(tf.BatchMatMul, 'wasm');
  const transposeKernel = tf.getKernel(tf.Transpose, 'wasm');
  if (!original || !transposeKernel || routed) return;
  routed = true;
  const kernelFunc: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const batchOf = (t: tf.TensorInfo): number => t.shape.slice(0, -2).reduce((n, d) => n * d, 1);
    const [batchA, batchB] = [batchOf(a), batchOf(b)];
    const rows = a.shape[a.shape.length - (transposeA ? 1 : 2)];
    const inner = a.shape[a.shape.length - (transposeA ? 2 : 1)];
    const cols = b.shape[b.shape.length - (transposeB ? 2 : 1)];
    const single = batchA === 1 && batchB === 1;
    const perEntry = !single && a.dtype === 'float32' && b.dtype === 'float32' && (batchA === batchB || batchA === 1 || batchB === 1)
      && rows * inner * cols >= PER_ENTRY_MIN_MACS;
    if (!perEntry && (!single || (!transposeA && !transposeB))) return original.kernelFunc(args);
    const backend = args.backend as unknown as WasmBackendInternals;
    const swapLast = (t: tf.TensorInfo): tf.TensorInfo => {
      const perm = t.shape.map((_, i) => i);
      [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
      return transposeKernel.kernelFunc({ inputs: { x: t }, backend: args.backend, attrs: { perm } }) as tf.TensorInfo;
    };
    const a2 = transposeA ? swapLast(a) : a;
    const b2 = transposeB ? swapLast(b) : b;
    const plain = { ...args.attrs, transposeA: false, transposeB: false };
    try {
      if (!perEntry) return original.kernelFunc({ ...args, inputs: { a: a2, b: b2 }, attrs: plain });
      const batch = Math.max(batchA, batchB);
      const lead = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
      const out = backend.makeOutput([...lead, rows, cols], 'float32');
      const offsets = [a2, b2].map((t) => backend.dataIdMap.get(t.dataId).memoryOffset);
      for (let i = 0; i < batch; i++) {
        const views = [
          backend.makeOutput([rows, inner], 'float32', offsets[0] + (batchA === 1 ? 0 : i * rows * inner * 4)),
          backend.makeOutput([inner, cols], 'float32', offsets[1] + (batchB === 1 ? 0 : i * inner * cols * 4)),
        ];
        const product = original.kernelFunc({ ...args, inputs: { a: views[0], b: views[1] }, attrs: plain }) as tf.TensorInfo;
        // Heap views are taken after the product: it may have grown (and moved) the wasm memory.
        backend.typedArrayFromHeap(out).set(backend.typedArrayFromHeap(product), i * rows * cols);
        backend.disposeData(product.dataId);
        for (const view of views) {
          backend.wasm.tfjs.disposeData(backend.dataIdMap.get(view.dataId).id);
          backend.dataIdMap.delete(view.dataId);
        }
      }
      return out;
    } finally {
      if (a2 !== a) backend.disposeData(a2.dataId);
      if (b2 !== b) backend.disposeData(b2.dataId);
    }
  };
  tf.unregisterKernel(tf.BatchMatMul, 'wasm');
  tf.registerKernel({ kernelName: tf.BatchMatMul, backendName: 'wasm', kernelFunc });
}

let routed = false;

/**
 * wasm's Identity (tf.clone, the tensors a custom gradient saves, broadcastTo of an already
 * broadcast shape, many gradients) copies the buffer: ~350 copies per reconstruction step of a
 * 17x128 block, ~10% of it. Tensors are immutable, so the output shares the input's data with a
 * reference count, as Reshape does on wasm and Identity does on the cpu backend.
 */
function shareDataOnIdentity(): void {
  const original = tf.getKernel(tf.Identity, 'wasm');
  if (!original || sharing) return;
  sharing = true;
  const kernelFunc: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') return original.kernelFunc(args);
    (args.backend as unknown as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  tf.unregisterKernel(tf.Identity, 'wasm');
  tf.registerKernel({ kernelName: tf.Identity, backendName: 'wasm', kernelFunc });
}

let sharing = false;

/**
 * Rows `rows` of a tensor along its first axis (no gradient): on wasm copied straight from the heap,
 * as its Gather kernel costs ~25 ns per element (2 ms for 32 rows of 17x128); elsewhere tf.gather.
 */
export function gatherRows(t: tf.Tensor, rows: ArrayLike<number>): tf.Tensor {
  if (tf.getBackend() !== 'wasm' || t.dtype !== 'float32' || t.rank === 0) return tf.gather(t, tf.tensor1d(Array.from(rows), 'int32'));
  const source = (tf.backend() as unknown as WasmBackendInternals).typedArrayFromHeap(t);
  const rowSize = t.size / t.shape[0];
  const out = new Float32Array(rows.length * rowSize);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    if (!Number.isInteger(row) || row < 0 || row >= t.shape[0]) throw new Error(`gatherRows: row ${row} is outside [0, ${t.shape[0]})`);
    out.set(source.subarray(row * rowSize, (row + 1) * rowSize), i * rowSize);
  }
  return tf.tensor(out, [rows.length, ...t.shape.slice(1)]);
}

/** Idempotent: the first call decides (a preference of wasm or cpu skips the native bindings), later calls get the same answer. */
export function initBackend(preferred?: EngineBackend): Promise<EngineBackend> {
  chosen ??= choose(preferred);
  return chosen;
}
