import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../workers/engine/backend';
import { transpose } from '../../workers/engine/ops/transpose';

beforeAll(async () => {
  await initBackend();
});

describe('planned transpose', () => {
  it.each([
    [[2, 3, 3, 2, 4], [2, 0, 3, 1, 4]],
    [[2, 1, 2, 3, 2, 3], [0, 2, 4, 1, 3, 5]],
    [[2, 3, 4, 5, 2, 3], [5, 3, 1, 0, 4, 2]],
    [[3, 4], [1, 0]],
    [[1, 2, 1], [2, 1, 0]],
    [[2, 3, 4], [0, 1, 2]],
  ])('matches tf.transpose for shape %j perm %j', (shape, perm) => {
    const x = tf.range(0, shape.reduce((a, b) => a * b, 1)).reshape(shape);
    const ours = transpose(x, perm);
    const reference = tf.transpose(x, perm);
    expect(ours.shape).toEqual(reference.shape);
    expect(Array.from(ours.dataSync())).toEqual(Array.from(reference.dataSync()));
  });
});
