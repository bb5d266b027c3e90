import type { JobRecord } from './job-record';

/** Jobs whose last state is remembered; older ones are forgotten first. */
const REMEMBERED_JOBS = 1000;

const ended = (job: JobRecord) => job.status !== 'queued' && job.status !== 'running';

/** Whether `job` is an earlier state than `told`: an earlier attempt, less progress in the same one, or not ended after the end. */
function isEarlier(job: JobRecord, told: JobRecord): boolean {
  if (ended(told)) return !ended(job);
  if (job.attempt !== told.attempt) return job.attempt < told.attempt;
  return job.progress < told.progress;
}

/**
 * Tells a replica's subscribers of a job's states in the order they happened. The states reach
 * a replica by two roads, its own writes and the change feed of the others', which can cross
 * (a read of another replica's newer write may finish before this replica's own older write
 * returns); a state earlier than the last one told is dropped.
 */
export class JobNotifier {
  private readonly told = new Map<string, JobRecord>();

  constructor(private readonly publish: (job: JobRecord) => void) {}

  notify(job: JobRecord): void {
    const told = this.told.get(job.id);
    if (told && isEarlier(job, told)) return;
    this.told.delete(job.id);
    this.told.set(job.id, job);
    if (this.told.size > REMEMBERED_JOBS) this.told.delete(this.told.keys().next().value as string);
    this.publish(job);
  }
}
