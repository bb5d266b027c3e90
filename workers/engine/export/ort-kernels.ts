/**
 * Which kernels onnxruntime actually runs for a model: the graph it writes after its optimizations
 * (session option optimizedModelFilePath), counted by op. Tells whether QDQ patterns were fused
 * into integer kernels (MatMulIntegerToFloat, QLinearMatMul, ...) instead of assuming it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeModel } from '../onnx/proto';

export const INTEGER_KERNELS = ['MatMulIntegerToFloat', 'MatMulInteger', 'QLinearMatMul', 'QLinearConv', 'ConvInteger', 'QGemm', 'DynamicQuantizeMatMul'];

export async function ortKernelCounts(model: Uint8Array): Promise<Record<string, number>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-optimized-'));
  const file = path.join(dir, 'optimized.onnx');
  try {
    const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all', optimizedModelFilePath: file });
    await session.release();
    const counts: Record<string, number> = {};
    for (const node of decodeModel(fs.readFileSync(file), 'optimized model').graph?.node ?? []) {
      const op = node.opType ?? '';
      counts[op] = (counts[op] ?? 0) + 1;
    }
    return counts;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
