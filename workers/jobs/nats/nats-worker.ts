import path from 'node:path';
import { jetstream, type Consumer, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ArtifactStore } from '../../common/artifacts/artifact-store';
import { NatsObjectArtifactStore } from '../../common/artifacts/nats-object-artifact-store';
import { decodeJobSpec, encodeMessage, type JobProgressEvent, type JobResultEvent, type QuantizationJobSpec } from '../../common/jobs/messages';
import type { JobDelivery, WorkerTransport } from '../../common/jobs/transport';
import { ensureJobStreams, type JobStreamOptions, type JobStreams } from '../../common/jobs/streams';

/** How long one pull waits on the server; also bounds how long a stop waits for the pull. */
const PULL_EXPIRES_MS = 2000;
/** Pause after a failed pull (server restarting) before the next one. */
const PULL_ERROR_BACKOFF_MS = 1000;

class NatsJobDelivery implements JobDelivery {
  constructor(
    private readonly message: JsMsg,
    readonly spec: QuantizationJobSpec,
  ) {}

  get attempt(): number {
    return this.message.info.deliveryCount;
  }

  working(): void {
    this.message.working();
  }

  async ack(): Promise<void> {
    await this.message.ackAck();
  }

  async retryLater(delayMs: number): Promise<void> {
    this.message.nak(delayMs);
  }
}

/** The worker's end over NATS JetStream: a durable pull consumer shared by every worker. */
export class NatsWorkerTransport implements WorkerTransport {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly consumer: Consumer,
    private readonly streams: JobStreams,
    readonly artifacts: ArtifactStore,
    private readonly onUndecodable: (error: Error) => void,
  ) {}

  static async create(
    nc: NatsConnection,
    options: JobStreamOptions & { cacheDir: string; onUndecodable: (error: Error) => void },
  ): Promise<NatsWorkerTransport> {
    const streams = await ensureJobStreams(nc, options);
    const js = jetstream(nc);
    const consumer = await js.consumers.get(streams.names.jobsStream, streams.names.workersConsumer);
    const artifacts = new NatsObjectArtifactStore(streams.artifacts, path.join(options.cacheDir, 'nats-artifacts'));
    return new NatsWorkerTransport(js, consumer, streams, artifacts, options.onUndecodable);
  }

  async nextJob(signal: AbortSignal): Promise<JobDelivery | undefined> {
    while (!signal.aborted) {
      let message: JsMsg | null;
      try {
        message = await this.consumer.next({ expires: PULL_EXPIRES_MS });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, PULL_ERROR_BACKOFF_MS));
        continue;
      }
      if (!message) continue;
      if (signal.aborted) {
        message.nak();
        return undefined;
      }
      try {
        return new NatsJobDelivery(message, decodeJobSpec(message.data));
      } catch (error) {
        this.onUndecodable(error as Error);
        message.term();
      }
    }
    return undefined;
  }

  async isCancelled(jobId: string): Promise<boolean> {
    return (await this.streams.cancellations.get(jobId))?.string() === 'cancelled';
  }

  async publishProgress(event: JobProgressEvent): Promise<void> {
    await this.js.publish(this.streams.names.progressSubject(event.jobId), encodeMessage(event));
  }

  async publishResult(event: JobResultEvent): Promise<void> {
    // One result per delivery attempt: a retried publish after a lost ack is dropped by the server.
    await this.js.publish(this.streams.names.resultSubject(event.jobId), encodeMessage(event), {
      msgID: `${event.jobId}:${event.attempt}:result`,
    });
  }

  async close(): Promise<void> {
    // The connection belongs to the caller.
  }
}
