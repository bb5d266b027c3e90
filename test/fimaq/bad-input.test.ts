import * as fs from 'node:fs';
import { InputError } from '../../workers/data/errors';
import { parseBits } from '../../workers/engine/bits';
import { quantizeModel } from '../../workers/quantization';
import { fimaqOptionsFromCli } from '../../workers/fimaq/cli-support';
import { resolveFimaqOptions } from '../../workers/fimaq/options';
import { modelWithoutProducts, sampleDataset, trainedTinyClassifier } from './fixtures';

/** Fails fast: rejected long before any search or reconstruction (minutes) could run, with slack for a loaded CI machine. */
const QUICK_MS = 20000;

describe('bad input is rejected before long work', () => {
  it('too few calibration images for --calib-size', async () => {
    const started = Date.now();
    await expect(quantizeModel({ model: fs.readFileSync(trainedTinyClassifier), calibration: await sampleDataset('train'), bits: 'w4a4', method: 'fimaq', calibSize: 2048 }))
      .rejects.toThrow(/1024 images, fewer than the 2048 requested/);
    expect(Date.now() - started).toBeLessThan(QUICK_MS);
  });

  it('too few images for --recon-size', async () => {
    const started = Date.now();
    await expect(quantizeModel({
      model: fs.readFileSync(trainedTinyClassifier), calibration: await sampleDataset('train'), bits: 'w4a4', method: 'fimaq', calibSize: 16, methodOptions: { reconSize: 4096 },
    })).rejects.toThrow(/1024 images, fewer than the 4096 reconstruction images/);
    expect(Date.now() - started).toBeLessThan(QUICK_MS);
  });

  it('bits out of range or malformed', () => {
    expect(() => parseBits('w9a9')).toThrow(/within 2\.\.8/);
    expect(() => parseBits('w1a4')).toThrow(/within 2\.\.8/);
    expect(() => parseBits('int4')).toThrow(/w4a4/);
  });

  it('nonsense method options', () => {
    expect(() => resolveFimaqOptions({ iters: 0 })).toThrow(InputError);
    expect(() => resolveFimaqOptions({ rank: 1.5 })).toThrow(/rank must be a positive integer/);
    expect(() => resolveFimaqOptions({ batchSize: 64, reconSize: 32 })).toThrow(/larger than the reconstruction set/);
  });

  it('a model with no quantizable site', async () => {
    await expect(quantizeModel({ model: modelWithoutProducts(), calibration: await sampleDataset('train'), bits: 'w4a4', method: 'fimaq', calibSize: 16 }))
      .rejects.toThrow(/no quantizable site/);
  });

  it('class prototypes from a calibration source without labels', async () => {
    const labeled = await sampleDataset('train');
    const unlabeled = { size: labeled.size, hasLabels: false, batches: (o: Parameters<typeof labeled.batches>[0]) => labeled.batches(o) };
    const started = Date.now();
    await expect(quantizeModel({
      model: fs.readFileSync(trainedTinyClassifier), calibration: unlabeled, bits: 'w4a4', method: 'fimaq', calibSize: 16,
      methodOptions: { task: 'retrieval', reference: { kind: 'prototypes' }, reconSize: 32 },
    })).rejects.toThrow(/class prototypes need labels/);
    expect(Date.now() - started).toBeLessThan(QUICK_MS);
  });

  it('a retrieval model without a reference set', () => {
    expect(() => fimaqOptionsFromCli({}, 'retrieval')).toThrow(/retrieval model .* needs a reference set/);
    expect(fimaqOptionsFromCli({ reference: 'gallery' }, 'retrieval')).toMatchObject({ task: 'retrieval', reference: { kind: 'gallery' } });
    expect(fimaqOptionsFromCli({ reference: 'prototypes' }, 'retrieval')).toMatchObject({ task: 'retrieval', reference: { kind: 'prototypes' } });
    expect(() => fimaqOptionsFromCli({ reference: '/nonexistent.npy' }, 'retrieval')).toThrow(/does not exist/);
  });
});
