import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import type { ArtifactStore } from '../../../workers/common/artifacts/artifact-store';
import type { QuantizationJobSpec } from '../../../workers/common/jobs/messages';
import type { ControlPlaneTransport, JobEventHandler } from '../../../workers/common/jobs/transport';
import type { HostToWorkerMessage, WorkerToHostMessage } from '../../../workers/common/jobs/ipc-messages';

/** How the gateway starts its embedded worker: a Node entry file and the flags to run it. */
export interface WorkerProcessCommand {
  entry: string;
  execArgv: string[];
  env: Record<string, string>;
}

const EVENT_RETRY_MS = 1000;
const RESTART_DELAY_MS = 1000;

interface WorkerProcess {
  child: ChildProcess;
  /** Pull requests not yet answered. */
  pulls: number;
  running: Map<string, number>;
}

/**
 * The embedded default: an in-process job queue in the gateway and worker child processes that
 * pull from it over IPC, so quantization never runs on the gateway's event loop. The queue
 * lives in memory (`durable` is false): the plugin republishes unfinished jobs on start. A
 * worker that dies has its jobs queued again, with the next attempt number.
 */
export class EmbeddedControlPlaneTransport implements ControlPlaneTransport {
  readonly durable = false;
  private readonly queue: Array<{ spec: QuantizationJobSpec; attempt: number }> = [];
  /** Jobs published and not yet acknowledged, by id. */
  private readonly specs = new Map<string, QuantizationJobSpec>();
  private readonly known = new Set<string>();
  private readonly attempts = new Map<string, number>();
  private readonly workers = new Set<WorkerProcess>();
  private onEvent: JobEventHandler = async () => undefined;
  private events: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    readonly artifacts: ArtifactStore,
    private readonly command: WorkerProcessCommand,
    private readonly processes: number,
    private readonly logger: Logger,
  ) {}

  async start(onEvent: JobEventHandler): Promise<void> {
    this.onEvent = onEvent;
    for (let i = 0; i < this.processes; i++) this.spawn();
  }

  async publish(spec: QuantizationJobSpec): Promise<void> {
    if (this.known.has(spec.jobId)) return;
    this.known.add(spec.jobId);
    this.specs.set(spec.jobId, spec);
    this.enqueue(spec);
  }

  async cancel(jobId: string): Promise<void> {
    const index = this.queue.findIndex((q) => q.spec.jobId === jobId);
    if (index >= 0) {
      this.queue.splice(index, 1);
      this.specs.delete(jobId);
    }
    for (const worker of this.workers) {
      if (worker.running.has(jobId)) this.send(worker, { type: 'cancel', jobId });
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.workers].map((worker) => new Promise<void>((resolve) => {
      if (worker.child.exitCode !== null || worker.child.signalCode !== null) return resolve();
      worker.child.once('exit', () => resolve());
      worker.child.kill('SIGTERM');
    })));
    await this.events;
  }

  private enqueue(spec: QuantizationJobSpec): void {
    const attempt = (this.attempts.get(spec.jobId) ?? 0) + 1;
    this.attempts.set(spec.jobId, attempt);
    this.queue.push({ spec, attempt });
    this.dispatch();
  }

  private dispatch(): void {
    for (const worker of this.workers) {
      while (worker.pulls > 0 && this.queue.length > 0) {
        const next = this.queue.shift() as { spec: QuantizationJobSpec; attempt: number };
        worker.pulls--;
        worker.running.set(next.spec.jobId, next.attempt);
        this.send(worker, { type: 'job', spec: next.spec, attempt: next.attempt });
      }
    }
  }

  private send(worker: WorkerProcess, message: HostToWorkerMessage): void {
    if (worker.child.connected) worker.child.send(message);
  }

  private spawn(): void {
    const child = fork(this.command.entry, [], {
      execArgv: this.command.execArgv,
      env: { ...process.env, ...this.command.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker: WorkerProcess = { child, pulls: 0, running: new Map() };
    this.workers.add(worker);
    child.on('message', (message: WorkerToHostMessage) => this.handle(worker, message));
    child.once('exit', (code, signal) => {
      this.workers.delete(worker);
      for (const [jobId] of worker.running) {
        const spec = this.specs.get(jobId);
        if (spec) this.enqueue(spec);
      }
      if (this.stopping) return;
      this.logger.warn({ pid: child.pid, code, signal, requeued: [...worker.running.keys()] }, 'embedded worker exited; restarting it');
      setTimeout(() => this.stopping || this.spawn(), RESTART_DELAY_MS).unref();
    });
  }

  private handle(worker: WorkerProcess, message: WorkerToHostMessage): void {
    switch (message.type) {
      case 'pull':
        worker.pulls++;
        this.dispatch();
        break;
      case 'ack':
        worker.running.delete(message.jobId);
        this.specs.delete(message.jobId);
        break;
      case 'retry': {
        worker.running.delete(message.jobId);
        const spec = this.specs.get(message.jobId);
        if (spec) setTimeout(() => this.stopping || this.enqueue(spec), message.delayMs).unref();
        break;
      }
      case 'event':
        this.deliverEvent(message.event);
        break;
    }
  }

  /** Events are applied one at a time, in arrival order, until the handler accepts each. */
  private deliverEvent(event: Parameters<JobEventHandler>[0]): void {
    const attempt = async (): Promise<void> => {
      try {
        await this.onEvent(event);
      } catch (error) {
        if (this.stopping) return;
        this.logger.warn({ err: error, job: event.jobId }, 'job event not applied; retrying');
        await new Promise((resolve) => setTimeout(resolve, EVENT_RETRY_MS));
        return attempt();
      }
    };
    this.events = this.events.then(attempt);
  }
}
