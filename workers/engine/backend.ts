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
    return 'wasm';
  }
  await tf.setBackend('cpu');
  return 'cpu';
}

/** Idempotent: the first call decides (a preference of wasm or cpu skips the native bindings), later calls get the same answer. */
export function initBackend(preferred?: EngineBackend): Promise<EngineBackend> {
  chosen ??= choose(preferred);
  return chosen;
}
