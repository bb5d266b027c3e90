import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Preprocessing } from '../../workers/common/preprocessing';

/** The committed Fashion-MNIST sample: 1000 test and 1024 train images. */
export const SAMPLE_DIR = join(__dirname, '../../deploy/demo/data/fashion-mnist');
export const MODELS_DIR = join(__dirname, '../../deploy/demo/models');
export const FULL_DATASET_DIR = '/usr/share/datasets/fashion-mnist';

export const FMNIST_PRE: Preprocessing = {
  inputName: 'input',
  layout: 'NCHW',
  height: 28,
  width: 28,
  channels: 1,
  mean: [0.286],
  std: [0.353],
};

export function preprocessing(overrides: Partial<Preprocessing>): Preprocessing {
  return { ...FMNIST_PRE, ...overrides };
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fimaq-data-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** An IDX file of unsigned bytes with the given dims. */
export function idxBuffer(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, Buffer.from(data)]);
}

/** A version-1 `.npy` file; `descr` like `|u1`, `<f4`, `<i8`. */
export function npyBuffer(descr: string, shape: number[], data: ArrayBufferView, fortran = false): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(prefix);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** Deterministic pixel pattern so tests can check where each value lands. */
export function pattern(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256);
}
