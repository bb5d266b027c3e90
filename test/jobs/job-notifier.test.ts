import { JobNotifier } from '../../plugins/fimaq/job-notifier';
import type { JobRecord } from '../../plugins/fimaq/job-record';

const state = (progress: number, extra: Partial<JobRecord> = {}) => ({ id: 'job', status: 'running', attempt: 1, progress, ...extra }) as JobRecord;

describe('a replica tells its subscribers of a job in the order things happened', () => {
  test('states that arrive after a later one are dropped; a new attempt and the end go through', () => {
    const told: string[] = [];
    const notifier = new JobNotifier((job) => told.push(`${job.status}:${job.attempt}:${job.progress}`));
    for (const job of [
      state(10), state(60), state(40), // 40 was written before 60 but its notice came late
      state(5, { attempt: 2 }), state(50, { attempt: 1 }), // a redelivery starts over; the old attempt is past
      state(100, { status: 'succeeded', attempt: 2 }), state(90, { attempt: 2 }),
      state(0, { id: 'other' }),
    ]) notifier.notify(job);
    expect(told).toEqual(['running:1:10', 'running:1:60', 'running:2:5', 'succeeded:2:100', 'running:1:0']);
  });
});
