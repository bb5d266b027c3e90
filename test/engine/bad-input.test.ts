import * as fs from 'node:fs';
import { initBackend } from '../../workers/engine/backend';
import { loadImageModel } from '../../workers/engine/image-model';
import { OnnxProgram } from '../../workers/engine/program';
import { quantizeModel } from '../../workers/engine/quantize-model';
import { syntheticCalibration, tinyClassifier } from './fixtures';
import { buildModel } from './onnx-builder';

beforeAll(async () => {
  await initBackend();
});

function reluModel(inputShape: (number | string)[], op = 'Relu', domain = ''): Uint8Array {
  return buildModel({
    inputs: [{ name: 'x', shape: inputShape }],
    outputs: [{ name: 'y', shape: inputShape }],
    nodes: [{ op, inputs: ['x'], outputs: ['y'], domain }],
  });
}

describe('bad input gets a clear error', () => {
  it('corrupt protobuf', () => {
    expect(() => OnnxProgram.fromBytes(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2]), 'broken.onnx')).toThrow(/broken\.onnx is not a valid ONNX protobuf/);
    const truncated = fs.readFileSync(tinyClassifier(17)).subarray(0, 5000);
    expect(() => OnnxProgram.fromBytes(truncated, 'truncated.onnx')).toThrow(/truncated\.onnx is not a valid ONNX/);
  });

  it('unsupported op, naming the op and the node', () => {
    expect(() => OnnxProgram.fromBytes(reluModel([1, 4], 'NonMaxSuppression'))).toThrow(/unsupported ONNX op NonMaxSuppression at node 'nonmaxsuppression_0'/);
    expect(() => OnnxProgram.fromBytes(reluModel([1, 4], 'Relu', 'com.example'))).toThrow(/unsupported ONNX op Relu \(domain com\.example\)/);
  });

  it('model with no image input', () => {
    expect(() => loadImageModel(reluModel(['N', 10]), 'tabular.onnx')).toThrow(/tabular\.onnx has no single image input: expected one float32 input of shape \[N, C, H, W\], found x \[N, 10\]/);
  });

  it('dynamic shapes the engine cannot resolve', () => {
    expect(() => loadImageModel(reluModel(['N', 3, 'H', 'W']), 'dynamic.onnx')).toThrow(/input 'x' has dynamic dimensions \[N, 3, H, W\] the engine cannot resolve/);
  });

  it('calibration data that does not fit the input', async () => {
    const model = fs.readFileSync(tinyClassifier(17));
    await expect(quantizeModel({ model, calibration: syntheticCalibration(8, [3, 32, 32]), bits: 'w4a4', method: 'rtn', calibSize: 8 }))
      .rejects.toThrow(/calibration images have shape \[3, 32, 32\] per image but the model input 'input' takes \[1, 28, 28\]/);
    await expect(quantizeModel({ model, calibration: syntheticCalibration(8, [1, 28, 28]), bits: 'w4a4', method: 'rtn', calibSize: 128 }))
      .rejects.toThrow(/has 8 images, fewer than the 128 requested/);
  });

  it('unknown method and malformed bits', async () => {
    const model = fs.readFileSync(tinyClassifier(17));
    const calibration = syntheticCalibration(8, [1, 28, 28]);
    await expect(quantizeModel({ model, calibration, bits: 'w4a4', method: 'magic' })).rejects.toThrow(/unknown quantization method "magic"; available: rtn/);
    await expect(quantizeModel({ model, calibration, bits: 'int4', method: 'rtn' })).rejects.toThrow(/bits must look like w4a4/);
  });
});
