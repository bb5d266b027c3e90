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
    routeTransposedProductsToXnnpack();
    return 'wasm';
  }
  await tf.setBackend('cpu');
  return 'cpu';
}

/**
 * wasm's BatchMatMul runs a single (unbatched) product through XNNPACK only when neither operand is
 * transposed; with transposeA or transposeB it falls back to a naive loop about 10x slower (a
 * [544,128]x[128,384] product: 2.2 ms plain, 21 ms transposed). Every matMul gradient is such a
 * product, so a transposed operand is transposed explicitly first (a copy far cheaper than the
 * product), then multiplied on the fast path. Batched products take the same loop either way.
 */
function routeTransposedProductsToXnnpack(): void {
  const original = tf.getKernel(tf.BatchMatMul, 'wasm');
  const transposeKernel = tf.getKernel(tf.Transpose, 'wasm');
  if (!original || !transposeKernel || routed) return;
  routed = true;
  const kernelFunc: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const batch = (t: tf.TensorInfo): number => t.shape.slice(0, -2).reduce((n, d) => n * d, 1);
    if ((!transposeA && !transposeB) || batch(a) !== 1 || batch(b) !== 1) return original.kernelFunc(args);
    const backend = args.backend as tf.KernelBackend;
    const swapLast = (t: tf.TensorInfo): tf.TensorInfo => {
      const perm = t.shape.map((_, i) => i);
      [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
      return transposeKernel.kernelFunc({ inputs: { x: t }, backend, attrs: { perm } }) as tf.TensorInfo;
    };
    const a2 = transposeA ? swapLast(a) : a;
    const b2 = transposeB ? swapLast(b) : b;
    try {
      return original.kernelFunc({ ...args, inputs: { a: a2, b: b2 }, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      if (a2 !== a) backend.disposeData(a2.dataId);
      if (b2 !== b) backend.disposeData(b2.dataId);
    }
  };
  tf.unregisterKernel(tf.BatchMatMul, 'wasm');
  tf.registerKernel({ kernelName: tf.BatchMatMul, backendName: 'wasm', kernelFunc });
}

let routed = false;

/** Idempotent: the first call decides (a preference of wasm or cpu skips the native bindings), later calls get the same answer. */
export function initBackend(preferred?: EngineBackend): Promise<EngineBackend> {
  chosen ??= choose(preferred);
  return chosen;
}
