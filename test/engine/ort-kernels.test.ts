import * as fs from 'node:fs';
import { ortKernelCounts } from '../../workers/engine/export/ort-kernels';
import { quantizeModel } from '../../workers/engine/quantize-model';
import { syntheticCalibration, tinyClassifier } from './fixtures';

async function exported(
  attentionActivations: 'per-tensor' | 'per-head', linearActivations: 'per-tensor' | 'per-token' = 'per-tensor',
): Promise<{ counts: Record<string, number>; matmulSites: number; attentionSites: number }> {
  const result = await quantizeModel({
    model: fs.readFileSync(tinyClassifier(17)),
    calibration: syntheticCalibration(16, [1, 28, 28]),
    bits: 'w4a4',
    method: 'rtn',
    calibSize: 16,
    attentionActivations,
    linearActivations,
  });
  const sites = result.quantized.sites;
  result.quantized.dispose();
  return {
    counts: await ortKernelCounts(result.onnx),
    matmulSites: sites.filter((s) => s.opType === 'MatMul').length,
    attentionSites: sites.filter((s) => s.kind === 'dynamic-matmul').length,
  };
}

describe('kernels onnxruntime runs for the W4A4 export', () => {
  it('fuses every MatMul site into MatMulIntegerToFloat when all activation scales are per tensor', async () => {
    const { counts, matmulSites } = await exported('per-tensor');
    console.log('per-tensor W4A4:', JSON.stringify(counts));
    expect(counts.MatMulIntegerToFloat).toBe(matmulSites);
    expect(counts.MatMul ?? 0).toBe(0);
  });

  it('keeps per-head attention inputs as float fake quantization and fuses the Linear layers', async () => {
    const { counts, matmulSites, attentionSites } = await exported('per-head');
    console.log('per-head W4A4:', JSON.stringify(counts));
    expect(counts.MatMulIntegerToFloat).toBe(matmulSites - attentionSites);
  });

  it('runs per-token Linear inputs on integer kernels (MatMulIntegerToFloat with unit scales)', async () => {
    const { counts, matmulSites, attentionSites } = await exported('per-head', 'per-token');
    console.log('per-token W4A4:', JSON.stringify(counts));
    expect(counts.MatMulIntegerToFloat).toBe(matmulSites - attentionSites);
  });
});
