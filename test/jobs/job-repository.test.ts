import { randomUUID } from 'node:crypto';
import { migrateToLatest } from '../../gateway/db/migrate';
import fimaq from '../../plugins/fimaq';
import { JOB_LOG_LINES, JobRepository, type NewJob } from '../../plugins/fimaq/job-repository';
import type { WorkerCapabilities } from '../../workers/common/jobs/messages';
import { startTestGateway, type Dialect, type TestGateway } from '../support/gateway-harness';
import { describeWithPostgres } from '../support/services';
import { registerTinyClassifier } from './support/jobs-harness';

const WORKER: WorkerCapabilities = { workerId: 'w1', host: 'h', backend: 'wasm', device: 'cpu', concurrency: 1 };

function repositorySuite(dialect: Dialect): void {
  let gateway: TestGateway;
  let jobs: JobRepository;
  let ids: { modelId: string; variantId: string };

  const newJob = (idempotencyKey: string | null = null): NewJob => ({
    spec: {
      jobId: randomUUID(),
      model: { id: ids.modelId, name: 'tiny', task: 'CLASSIFICATION', preprocessing: { inputName: 'x', layout: 'NCHW', height: 28, width: 28, channels: 1, mean: [0], std: [1] } },
      parent: { variantId: ids.variantId, artifactSha256: 'a'.repeat(64) },
      method: 'RTN',
      bits: 'W4A4',
      calibration: { imagesSha256: 'b'.repeat(64), count: 8 },
      calibSize: 8,
      reconSize: 8,
      iters: 1,
      rank: 1,
      seed: 0,
    },
    request: {
      model: 'tiny', baseVariant: null, method: 'RTN', bits: 'W4A4', calibration: { path: '/data' },
      calibSize: 8, reconSize: 8, iters: 1, rank: 1, seed: 0, evaluation: null, shadow: true,
    },
    idempotencyKey,
    createdBy: 'admin',
  });
  const progress = (message: string, attempt = 1, percent = 25) => ({
    stage: 'calibrate', block: 1, blocks: 4, iteration: null, iterations: null, progress: percent, etaSeconds: 3, attempt, worker: WORKER, message,
  });

  beforeAll(async () => {
    gateway = await startTestGateway({ dialect });
    // The plugin's tables without the plugin running (its dispatcher would drain the outbox).
    await migrateToLatest(gateway.services.database, [fimaq]);
    jobs = new JobRepository(gateway.services.database.db, gateway.services.audit);
    ids = await registerTinyClassifier(gateway);
  });

  afterAll(async () => {
    await gateway.stop();
  });

  test('a job and its dispatch entry are written together', async () => {
    const job = await jobs.create(newJob('key-1'));
    expect(job).toMatchObject({ status: 'queued', progress: 0, attempt: 0, log: [], worker: null, idempotencyKey: 'key-1' });
    expect(job.createdAt).toBeInstanceOf(Date);
    expect(await jobs.findByIdempotencyKey('key-1')).toEqual(job);
    const due = (await jobs.dueOutbox(100)).filter((e) => e.jobId === job.id);
    expect(due).toEqual([{ id: expect.any(Number), jobId: job.id, kind: 'dispatch', attempts: 0 }]);
  });

  test('an idempotency key is unique, and a refused job leaves no outbox entry', async () => {
    const before = await jobs.outboxSize();
    await jobs.create(newJob('key-2'));
    // Matched by message: better-sqlite3's native part throws errors of the first jest realm that loaded it.
    await expect(jobs.create(newJob('key-2'))).rejects.toMatchObject({ message: expect.stringMatching(/unique|duplicate/i) });
    expect(await jobs.outboxSize()).toBe(before + 1);
  });

  test('progress makes a job running and keeps the last log lines; the first outcome wins', async () => {
    const { id } = await jobs.create(newJob());
    for (let i = 0; i < JOB_LOG_LINES + 3; i++) await jobs.recordProgress(id, progress(`line ${i}`));
    const running = await jobs.find(id);
    expect(running).toMatchObject({ status: 'running', stage: 'calibrate', block: 1, blocks: 4, progress: 25, etaSeconds: 3, attempt: 1, worker: WORKER });
    expect(running!.log).toHaveLength(JOB_LOG_LINES);
    expect(running!.log.at(-1)).toBe(`line ${JOB_LOG_LINES + 2}`);
    expect(running!.startedAt).toBeInstanceOf(Date);

    const failed = await jobs.finish(id, { status: 'failed', reason: 'engine exploded', attempt: 2 });
    expect(failed).toMatchObject({ status: 'failed', reason: 'engine exploded', attempt: 2 });
    expect(await jobs.finish(id, { status: 'succeeded', reason: null })).toBeUndefined();
    expect(await jobs.recordProgress(id, progress('late'))).toBeUndefined();
    expect(await jobs.find(id)).toMatchObject({ status: 'failed', reason: 'engine exploded' });
  });

  test('progress never goes back within an attempt; a new attempt starts over; the ended job says how it ended', async () => {
    const { id } = await jobs.create(newJob());
    await jobs.recordProgress(id, progress('ahead', 1, 40));
    expect(await jobs.recordProgress(id, progress('late event', 1, 30))).toMatchObject({ progress: 40 });
    await jobs.recordProgress(id, { ...progress('reconstructing', 1, 50), stage: 'reconstruct', iteration: 20, iterations: 100 });
    expect(await jobs.find(id)).toMatchObject({ stage: 'reconstruct', block: 1, blocks: 4, iteration: 20, iterations: 100, progress: 50 });
    expect(await jobs.recordProgress(id, progress('redelivered', 2, 2))).toMatchObject({ progress: 2, attempt: 2 });
    const ended = await jobs.finish(id, { status: 'succeeded', reason: null, logLine: 'job finished: variant w4a4-fimaq registered' });
    expect(ended).toMatchObject({ status: 'succeeded', stage: 'finished', progress: 100, etaSeconds: 0 });
    expect(ended!.log.at(-1)).toBe('job finished: variant w4a4-fimaq registered');
  });

  test('cancelling an unpublished job replaces its dispatch entry with a cancel entry', async () => {
    const { id } = await jobs.create(newJob());
    await jobs.finish(id, { status: 'cancelled', reason: 'cancelled by admin' });
    const entries = (await jobs.dueOutbox(1000)).filter((e) => e.jobId === id);
    expect(entries.map((e) => e.kind)).toEqual(['cancel']);
  });

  test('a deferred entry waits; a completed one is gone; redispatch never doubles an entry', async () => {
    const { id } = await jobs.create(newJob());
    const [entry] = (await jobs.dueOutbox(1000)).filter((e) => e.jobId === id);
    await jobs.deferOutbox(entry.id, 'nats down', new Date(Date.now() + 60_000));
    expect((await jobs.dueOutbox(1000)).some((e) => e.id === entry.id)).toBe(false);
    await jobs.redispatch(id);
    await jobs.deferOutbox(entry.id, 'nats down', new Date(Date.now() - 1));
    expect((await jobs.dueOutbox(1000)).filter((e) => e.jobId === id)).toEqual([{ ...entry, attempts: 2 }]);
    await jobs.completeOutbox(entry.id);
    await jobs.redispatch(id);
    expect((await jobs.dueOutbox(1000)).filter((e) => e.jobId === id)).toHaveLength(1);
  });

  test('lists filter by model and status, newest first; unfinished jobs are found for republishing', async () => {
    const all = await jobs.list({ modelId: ids.modelId });
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.map((j) => j.createdAt.getTime())).toEqual([...all.map((j) => j.createdAt.getTime())].sort((a, b) => b - a));
    expect((await jobs.list({ status: 'failed' })).every((j) => j.status === 'failed')).toBe(true);
    expect((await jobs.listUnfinished()).every((j) => j.status === 'queued' || j.status === 'running')).toBe(true);
  });
}

describe('job repository on SQLite', () => repositorySuite('sqlite'));
describeWithPostgres('job repository on PostgreSQL', () => repositorySuite('postgres'));
