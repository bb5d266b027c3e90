import { decodeInferenceRequest, encodeInferenceResponse } from '../../gateway/http/inference/inference-codec';
import { compareClassification, cosineSimilarity, overlapAtK, rankCorrelationAtK, toProbabilities } from '../../gateway/serving/comparison';
import type { Tensor } from '../../gateway/tensors/tensor';
import { ModelGallery } from '../../gateway/serving/gallery';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const noRaw = () => undefined;

describe('inference codecs', () => {
  test('JSON data of every numeric kind becomes the matching typed array', () => {
    const decoded = decodeInferenceRequest(
      json({
        inputs: [
          { name: 'flags', datatype: 'BOOL', shape: [2], data: [true, false] },
          { name: 'ids', datatype: 'INT64', shape: [1, 2], data: [[9007199254740991, -3]] },
          { name: 'bytes', datatype: 'UINT8', shape: [3], data: [0, 128, 255] },
          { name: 'wide', datatype: 'FP64', shape: [1], data: [0.1] },
        ],
      }),
      undefined,
      noRaw,
    );
    expect(decoded.inputs.map((t) => t.data.constructor.name)).toEqual(['Uint8Array', 'BigInt64Array', 'Uint8Array', 'Float64Array']);
    expect(Array.from(decoded.inputs[1].data as BigInt64Array)).toEqual([9007199254740991n, -3n]);
    expect(Array.from(decoded.inputs[0].data as Uint8Array)).toEqual([1, 0]);
  });

  test.each([
    ['a fraction for an integer type', { name: 'x', datatype: 'INT32', shape: [1], data: [1.5] }, /1.5 is not a valid INT32 value/],
    ['a number for BOOL', { name: 'x', datatype: 'BOOL', shape: [1], data: [1] }, /1 is not a valid BOOL value/],
    ['FP16 in JSON', { name: 'x', datatype: 'FP16', shape: [1], data: [1] }, /send FP16 tensors in binary form/],
    ['a negative dimension', { name: 'x', datatype: 'FP32', shape: [-1], data: [1] }, /non-negative integers/],
    ['both data and binary size', { name: 'x', datatype: 'FP32', shape: [1], data: [1], parameters: { binary_data_size: 4 } }, /both "data" and/],
    ['neither data nor binary size', { name: 'x', datatype: 'FP32', shape: [1] }, /neither "data" nor/],
  ])('JSON refuses %s', (_name, input, message) => {
    expect(() => decodeInferenceRequest(json({ inputs: [input] }), undefined, noRaw)).toThrow(message);
  });

  test('outputs: JSON by default, binary when asked, FP16 and BOOL readable in JSON', () => {
    const outputs: Tensor[] = [
      { name: 'half', datatype: 'FP16', shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) },
      { name: 'mask', datatype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) },
      { name: 'logits', datatype: 'FP32', shape: [1, 2], data: Float32Array.from([0.5, -1]) },
    ];
    const request = decodeInferenceRequest(json({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [0] }], outputs: [{ name: 'logits', parameters: { binary_data: true } }] }), undefined, noRaw);
    const encoded = encodeInferenceResponse(request, { modelName: 'm', modelVersion: 'v', id: 'r', outputs });
    const header = JSON.parse(encoded.body.subarray(0, encoded.headerLength).toString());
    expect(header.outputs[0].data).toEqual([1, -2]);
    expect(header.outputs[1].data).toEqual([true, false]);
    expect(header.outputs[2]).toEqual({ name: 'logits', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } });
    const tail = encoded.body.subarray(encoded.headerLength as number);
    expect(Array.from(new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + 8)))).toEqual([0.5, -1]);
  });
});

describe('comparison figures', () => {
  test('identical answers agree with zero divergence; logits and probabilities are both understood', () => {
    expect(compareClassification([2, 1, 0], [2, 1, 0])).toEqual({ top1Agrees: true, klDivergence: 0, top1ProbabilityDelta: 0 });
    expect(Array.from(toProbabilities([0.2, 0.8]))).toEqual([0.2, 0.8]);
    const p = Array.from(toProbabilities([0, Math.log(3)]));
    expect(p[1]).toBeCloseTo(0.75, 10);
  });

  test('KL, top-1 delta and agreement of different answers', () => {
    const result = compareClassification([0.7, 0.2, 0.1], [0.3, 0.6, 0.1]);
    expect(result.top1Agrees).toBe(false);
    expect(result.klDivergence).toBeCloseTo(0.7 * Math.log(0.7 / 0.3) + 0.2 * Math.log(0.2 / 0.6), 10);
    expect(result.top1ProbabilityDelta).toBeCloseTo(0.4, 10);
    expect(Number.isFinite(compareClassification([0.5, 0.5], [1, 0]).klDivergence)).toBe(true);
  });

  test('cosine and overlap@k', () => {
    expect(cosineSimilarity([1, 0], [0, 2])).toBe(0);
    expect(cosineSimilarity([1, 1], [2, 2])).toBeCloseTo(1, 12);
    expect(overlapAtK(['a', 'b', 'c', 'd'], ['d', 'c', 'x', 'y'])).toBe(0.5);
    expect(rankCorrelationAtK(['a', 'b', 'c'], ['a', 'b', 'c'])).toBeCloseTo(1, 12);
    expect(rankCorrelationAtK(['a', 'b', 'c'], ['c', 'b', 'a'])).toBeCloseTo(-1, 12);
    // Same members, two swapped: high but below 1; a new member lowers it further.
    const swapped = rankCorrelationAtK(['a', 'b', 'c', 'd'], ['a', 'b', 'd', 'c']);
    expect(swapped).toBeCloseTo(0.8, 12);
    expect(rankCorrelationAtK(['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'x'])).toBeLessThan(1);
    expect(rankCorrelationAtK(['a', 'b', 'c', 'd'], ['x', 'y', 'z', 'w'])).toBeLessThan(0);
    expect(rankCorrelationAtK(['a'], ['a'])).toBe(1);
  });
});

describe('gallery embeddings', () => {
  test('a variant counts as embedded only once it has every item, so /infer never waits for an embedding', async () => {
    const gallery = new ModelGallery(10);
    gallery.upsert([{ id: 'a', image: Buffer.from('a') }, { id: 'b', image: Buffer.from('b') }]);
    expect(gallery.embedded('v1')).toBeUndefined();
    let release: () => void = () => undefined;
    const started = new Promise<void>((begun) => {
      void gallery.embeddings('v1', async (images) => {
        const released = new Promise<void>((resolve) => (release = resolve));
        begun();
        await released;
        return images.map((_, i) => Float32Array.of(i, 1));
      });
    });
    await started;
    expect(gallery.embedded('v1')).toBeUndefined(); // under way: still not there
    const embedding = gallery.embeddings('v1', async () => []);
    release();
    await embedding;
    expect(gallery.embedded('v1')).toHaveLength(2);
    gallery.upsert([{ id: 'c', image: Buffer.from('c') }]);
    expect(gallery.embedded('v1')).toBeUndefined(); // a new item is not embedded yet
    expect(gallery.embedded('v2')).toBeUndefined();
  });
});
