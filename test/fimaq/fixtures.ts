/** FIMA-Q's test fixtures: the briefly trained tiny ViT, Fashion-MNIST sample batches, a model with no product. */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { openDataset } from '../../workers/data';
import { encodeModel, onnx } from '../../workers/engine/onnx/proto';
import type { ImageDataset } from '../../workers/data/types';

export const trainedTinyClassifier = path.join(__dirname, '..', 'fixtures', 'fimaq', 'trained-tiny-vit-cls-op17.onnx');
const SAMPLE = path.join(__dirname, '..', '..', 'deploy', 'demo', 'data', 'fashion-mnist');
export const PREPROCESSING = { inputName: 'input', layout: 'NCHW' as const, height: 28, width: 28, channels: 1, mean: [0.286], std: [0.353] };

export function sampleDataset(split: 'train' | 'test'): Promise<ImageDataset> {
  return openDataset({ path: SAMPLE, split }, PREPROCESSING);
}

/** The first `count` images of a split as one [N, 1, 28, 28] tensor. */
export async function sampleImages(split: 'train' | 'test', count: number): Promise<tf.Tensor> {
  const dataset = await sampleDataset(split);
  for await (const batch of dataset.batches({ batchSize: count, limit: count })) return tf.tensor(batch.data, batch.dims);
  throw new Error('empty sample');
}

/** An image model without any MatMul, Gemm or Conv: input → Relu → output. */
export function modelWithoutProducts(): Uint8Array {
  const shape = { dim: [{ dimParam: 'N' }, { dimValue: 1 }, { dimValue: 28 }, { dimValue: 28 }] };
  const valueInfo = (name: string): onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape } } });
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'relu', node: [{ opType: 'Relu', input: ['input'], output: ['output'], name: 'relu' }], input: [valueInfo('input')], output: [valueInfo('output')] },
  });
}
