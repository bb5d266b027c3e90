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
