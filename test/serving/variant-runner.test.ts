import { VariantRunner } from '../../gateway/serving/variant-runner';
import { OverloadedError } from '../../gateway/serving/serving-errors';
import type { Tensor } from '../../gateway/tensors/tensor';
import type { SessionRunResult, WorkerSession } from '../../gateway/serving/worker-session';

/** A session whose runs finish when the test says so; each run's input rows are recorded. */
class ManualSession {
  readonly runs: Array<{ rows: number[]; finish: () => void }> = [];
  released = false;
  alive = true;

  run(inputs: Tensor[]): Promise<SessionRunResult> {
    const values = Array.from(inputs[0].data as Float32Array);
    return new Promise((resolve) => {
      this.runs.push({
        rows: values,
        // The "model" doubles each value, so every request can check it got its own rows back.
        finish: () => resolve({ computeMs: 1, outputs: [{ name: 'y', datatype: 'FP32', shape: [values.length, 1], data: Float32Array.from(values, (v) => 2 * v) }] }),
      });
    });
  }

  async release(): Promise<void> {
    this.released = true;
  }
}

const request = (...values: number[]): Tensor[] => [{ name: 'x', datatype: 'FP32', shape: [values.length, 1], data: Float32Array.from(values) }];
/** Lets the runner's continuation (a promise chain, then setImmediate) happen. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

function runnerOf(session: ManualSession, options: { queueLimit?: number; maxBatchSize?: number; maxQueueDelayMs?: number } = {}) {
  return new VariantRunner(session as unknown as WorkerSession, {
    label: 'variant m/v',
    queueLimit: options.queueLimit ?? 8,
    batching: { maxBatchSize: options.maxBatchSize ?? 1, maxQueueDelayMs: options.maxQueueDelayMs ?? 0 },
    batchable: true,
  });
}

describe('VariantRunner', () => {
  test('one run at a time; a full queue refuses with a retry hint', async () => {
    const session = new ManualSession();
    const runner = runnerOf(session, { queueLimit: 2 });
    const first = runner.submit(request(1), ['y']);
    const queued = [runner.submit(request(2), ['y']), runner.submit(request(3), ['y'])];
    await expect(runner.submit(request(4), ['y'])).rejects.toBeInstanceOf(OverloadedError);
    await expect(runner.submit(request(4), ['y'])).rejects.toMatchObject({ httpStatus: 429, retryAfterSeconds: expect.any(Number) });
    expect(session.runs).toHaveLength(1);
    session.runs[0].finish();
    expect((await first).outputs[0].data).toEqual(Float32Array.from([2]));
    await settle();
    session.runs[1].finish();
    await settle();
    session.runs[2].finish();
    expect((await Promise.all(queued)).map((o) => o.outputs[0].data[0])).toEqual([4, 6]);
  });

  test('dynamic batching merges waiting requests up to the row limit and splits the answers', async () => {
    const session = new ManualSession();
    const runner = runnerOf(session, { maxBatchSize: 4, maxQueueDelayMs: 60000 });
    const replies = [runner.submit(request(1), ['y']), runner.submit(request(2, 3), ['y']), runner.submit(request(4), ['y']), runner.submit(request(5), ['y'])];
    await settle();
    // Four rows are waiting: the batch is full, so it runs without waiting out the delay.
    expect(session.runs.map((r) => r.rows)).toEqual([[1, 2, 3, 4]]);
    session.runs[0].finish();
    const outcomes = await Promise.all(replies.slice(0, 3));
    expect(outcomes.map((o) => Array.from(o.outputs[0].data as Float32Array))).toEqual([[2], [4, 6], [8]]);
    expect(outcomes.map((o) => o.outputs[0].shape)).toEqual([[1, 1], [2, 1], [1, 1]]);
    expect(outcomes[0].batchRows).toBe(4);
    await settle();
    // One row is left: it waits for company until the delay is over.
    expect(session.runs).toHaveLength(1);
    runner.useBatching({ maxBatchSize: 4, maxQueueDelayMs: 0 });
    const last = runner.submit(request(6), ['y']);
    await settle();
    expect(session.runs[1].rows).toEqual([5, 6]);
    session.runs[1].finish();
    expect((await replies[3]).batchRows).toBe(2);
    expect(Array.from((await last).outputs[0].data as Float32Array)).toEqual([12]);
  });

  test('closing finishes every admitted request, refuses new ones, then releases the session', async () => {
    const session = new ManualSession();
    const runner = runnerOf(session);
    const admitted = [runner.submit(request(1), ['y']), runner.submit(request(2), ['y'])];
    const closed = runner.close();
    await expect(runner.submit(request(3), ['y'])).rejects.toThrow(/being unloaded/);
    session.runs[0].finish();
    await settle();
    session.runs[1].finish();
    await Promise.all(admitted);
    await closed;
    expect(session.released).toBe(true);
  });
});
