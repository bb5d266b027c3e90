import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { Block, describeBlocks, partitionBlocks, runBlock } from '../../workers/engine/blocks';
import { ImageModel, forward, loadImageModelFile } from '../../workers/engine/image-model';
import { QuantSite, findSites } from '../../workers/engine/sites';
import { maxAbsDiff, syntheticImages, tinyClassifier, tinyEncoder } from './fixtures';

beforeAll(async () => {
  await initBackend();
});

describe.each([tinyClassifier(13), tinyClassifier(17), tinyEncoder])('blocks of %s', (file) => {
  let model: ImageModel;
  let sites: QuantSite[];
  let blocks: Block[];
  beforeAll(() => {
    model = loadImageModelFile(file);
    sites = findSites(model.program, { weightBits: 4, activationBits: 4 });
    blocks = partitionBlocks(model.program, sites);
  });

  it('groups patch embedding, one block per transformer block, head; every site in one block', () => {
    console.log(describeBlocks(blocks));
    expect(blocks.map((b) => b.kind)).toEqual(['patch-embedding', 'transformer', 'transformer', 'head']);
    expect(blocks[0].sites.map((s) => s.kind)).toEqual(['conv']);
    for (const block of blocks.slice(1, 3)) {
      expect(block.sites.map((s) => s.kind)).toEqual(['linear', 'dynamic-matmul', 'dynamic-matmul', 'linear', 'linear', 'linear']);
    }
    expect(blocks[3].sites.map((s) => s.position)).toEqual(['head']);
    expect(blocks.flatMap((b) => b.sites).length).toBe(sites.length);
  });

  it('chains blocks run alone to the full forward pass', () => {
    const images = tf.tensor(syntheticImages(3, model.input.chw), [3, ...model.input.chw]);
    let x = images;
    for (const block of blocks) x = runBlock(model.program, block, x);
    const full = forward(model, images);
    expect(maxAbsDiff(x.dataSync(), full.dataSync())).toBeLessThan(1e-6);
  });
});

describe('changing constants after load', () => {
  it('applies a new weight, refuses one that was folded at load', () => {
    const model = loadImageModelFile(tinyClassifier(17));
    const { program } = model;
    const images = tf.tensor(syntheticImages(2, model.input.chw), [2, ...model.input.chw]);
    const before = forward(model, images).dataSync();
    const headGemm = program.nodes.find((n) => n.opType === 'Gemm');
    const bias = headGemm?.inputs[2] as string;
    const old = program.constantValue(bias) as tf.Tensor;
    program.setConstant(bias, tf.add(old, 1));
    const after = forward(model, images).dataSync();
    expect(after[0] - before[0]).toBeCloseTo(1, 5);
    expect(program.changedConstants.has(bias)).toBe(true);
    const folded = program.nodes.find((n, i) => program.nodeClass(i) === 'constant' && n.inputs.some((name) => program.graph.initializers.has(name)));
    if (folded) {
      const input = folded.inputs.find((name) => program.graph.initializers.has(name)) as string;
      expect(() => program.setConstant(input, program.constantValue(input) as tf.Tensor)).toThrow(/feeds folded node/);
    }
  });
});

describe('sites', () => {
  it('carry bits and granularity per operand, with the patch-embedding and head overrides', () => {
    const { program } = loadImageModelFile(tinyClassifier(13));
    const sites = findSites(program, { weightBits: 4, activationBits: 8 });
    const conv = sites.find((s) => s.kind === 'conv') as QuantSite;
    expect(conv.operands.map((o) => [o.role, o.bits, o.granularity, o.axis])).toEqual([['activation', 8, 'per-tensor', undefined], ['weight', 4, 'per-channel', 0]]);
    const qkv = sites.find((s) => s.id.includes('qkv')) as QuantSite;
    expect(qkv.operands.map((o) => [o.role, o.bits, o.granularity, o.axis])).toEqual([['activation', 8, 'per-tensor', undefined], ['weight', 4, 'per-channel', 1]]);
    const attention = sites.find((s) => s.kind === 'dynamic-matmul') as QuantSite;
    expect(attention.operands.map((o) => [o.role, o.granularity, o.axis, o.shape.length])).toEqual([['activation', 'per-head', 1, 4], ['activation', 'per-head', 1, 4]]);
    const head = sites.find((s) => s.position === 'head') as QuantSite;
    expect(head.opType).toBe('Gemm');
    expect(head.operands.map((o) => [o.bits, o.axis])).toEqual([[8, undefined], [4, 0]]);

    const lowBitConv = findSites(program, { weightBits: 3, activationBits: 3, linearActivations: 'per-token' });
    expect(lowBitConv[0].operands[0].bits).toBe(8);
    expect(lowBitConv[1].operands[0]).toMatchObject({ granularity: 'per-token', axis: 1, bits: 3 });
  });
});
