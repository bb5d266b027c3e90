import path from 'node:path';
import { jetstream, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { ArtifactStore } from '../../../workers/common/artifacts/artifact-store';
import { NatsObjectArtifactStore } from '../../../workers/common/artifacts/nats-object-artifact-store';
import { decodeJobEvent, encodeMessage, JobMessageError, type QuantizationJobSpec } from '../../../workers/common/jobs/messages';
import type { ControlPlaneTransport, JobEventHandler } from '../../../workers/common/jobs/transport';
import { ensureJobStreams, type JobStreamOptions, type JobStreams } from '../../../workers/common/jobs/streams';

/** Delay before an event whose handler failed (database down, say) is offered again. */
const EVENT_RETRY_MS = 2000;

/**
 * The control plane's end over NATS JetStream: jobs go to the work-queue stream with the job id
 * as message id, events come back through a durable pull consumer shared by gateway replicas.
 */
export class NatsControlPlaneTransport implements ControlPlaneTransport {
  readonly durable = true;
  private constructor(
    private readonly js: JetStreamClient,
    private readonly streams: JobStreams,
    readonly artifacts: ArtifactStore,
    private readonly onUndecodable: (error: Error) => void,
  ) {}

  private messages: ConsumerMessages | undefined;
  private consuming: Promise<void> | undefined;

  static async create(
    nc: NatsConnection,
    options: JobStreamOptions & { cacheDir: string; onUndecodable: (error: Error) => void },
  ): Promise<NatsControlPlaneTransport> {
    const streams = await ensureJobStreams(nc, options);
    const artifacts = new NatsObjectArtifactStore(streams.artifacts, path.join(options.cacheDir, 'nats-artifacts'));
    return new NatsControlPlaneTransport(jetstream(nc), streams, artifacts, options.onUndecodable);
  }

  async start(onEvent: JobEventHandler): Promise<void> {
    const consumer = await this.js.consumers.get(this.streams.names.eventsStream, this.streams.names.controlPlaneConsumer);
    const messages = await consumer.consume({ max_messages: 64 });
    this.messages = messages;
    this.consuming = (async () => {
      for await (const message of messages) {
        let event;
        try {
          event = decodeJobEvent(message.data);
        } catch (error) {
          // A malformed event can never be applied; keep it out of the way for good.
          this.onUndecodable(error as JobMessageError);
          message.term();
          continue;
        }
        try {
          await onEvent(event);
          message.ack();
        } catch {
          message.nak(EVENT_RETRY_MS);
        }
      }
    })();
  }

  async publish(spec: QuantizationJobSpec): Promise<void> {
    await this.js.publish(this.streams.names.jobsSubject, encodeMessage(spec), { msgID: spec.jobId });
  }

  async cancel(jobId: string): Promise<void> {
    await this.streams.cancellations.put(jobId, 'cancelled');
  }

  async stop(): Promise<void> {
    await this.messages?.close();
    await this.consuming;
  }
}
