/**
 * Names and setup of everything the job system keeps in NATS: the work-queue stream workers pull
 * from, the events stream the control plane consumes, the cancellation bucket and the artifact
 * bucket. Both sides call `ensureJobStreams`; creating what exists is a no-op, so either may
 * start first.
 */
import { AckPolicy, DeliverPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { nanos, type NatsConnection } from '@nats-io/nats-core';

export interface JobStreamNames {
  jobsStream: string;
  jobsSubject: string;
  workersConsumer: string;
  eventsStream: string;
  progressSubject: (jobId: string) => string;
  resultSubject: (jobId: string) => string;
  eventsSubjects: string;
  controlPlaneConsumer: string;
  cancellationsBucket: string;
  artifactsBucket: string;
}

/** Every name under one namespace, so several deployments (or test suites) share a server safely. */
export function jobStreamNames(namespace: string): JobStreamNames {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(namespace)) throw new Error(`NATS namespace "${namespace}" must be 1-32 letters, digits, '_' or '-'`);
  const upper = namespace.toUpperCase().replace(/-/g, '_');
  return {
    jobsStream: `${upper}_JOBS`,
    jobsSubject: `${namespace}.jobs.run`,
    workersConsumer: `${namespace}-workers`,
    eventsStream: `${upper}_JOB_EVENTS`,
    progressSubject: (jobId) => `${namespace}.jobs.events.progress.${jobId}`,
    resultSubject: (jobId) => `${namespace}.jobs.events.result.${jobId}`,
    eventsSubjects: `${namespace}.jobs.events.>`,
    controlPlaneConsumer: `${namespace}-control-plane`,
    cancellationsBucket: `${namespace}-job-cancellations`,
    artifactsBucket: `${namespace}-artifacts`,
  };
}

export interface JobStreamOptions {
  namespace: string;
  /**
   * How long a pulled job may go without a heartbeat before JetStream redelivers it. Workers
   * own this setting; the control plane leaves it undefined and never changes it.
   */
  ackWaitMs?: number;
  /**
   * Copies JetStream keeps of each stream and bucket (1, or 3 on a 3-node cluster so a node can
   * be lost). Applies when they are created; existing ones keep theirs.
   */
  replicas?: number;
}

const DEFAULT_ACK_WAIT_MS = 30_000;

const DAY_NS = nanos(24 * 3600 * 1000);

async function ensureStream(jsm: JetStreamManager, config: Parameters<JetStreamManager['streams']['add']>[0]): Promise<void> {
  try {
    await jsm.streams.info(config.name);
  } catch {
    await jsm.streams.add(config);
  }
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Parameters<JetStreamManager['consumers']['add']>[1] & { durable_name: string },
  /** When given, an existing consumer is updated to it. */
  ackWaitMs?: number,
): Promise<void> {
  try {
    await jsm.consumers.info(stream, config.durable_name);
  } catch {
    await jsm.consumers.add(stream, config);
    return;
  }
  if (ackWaitMs !== undefined) await jsm.consumers.update(stream, config.durable_name, { ack_wait: nanos(ackWaitMs) });
}

export interface JobStreams {
  names: JobStreamNames;
  cancellations: KV;
  artifacts: ObjectStore;
}

export async function ensureJobStreams(nc: NatsConnection, options: JobStreamOptions): Promise<JobStreams> {
  const names = jobStreamNames(options.namespace);
  const replicas = options.replicas ?? 1;
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, {
    name: names.jobsStream,
    subjects: [names.jobsSubject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: replicas,
    // Publishing a job id again within this window is dropped by the server.
    duplicate_window: DAY_NS,
  });
  await ensureConsumer(jsm, names.jobsStream, {
    durable_name: names.workersConsumer,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS),
    // Delivery attempts are bounded by the worker, which can then report why the job failed.
    max_deliver: -1,
  }, options.ackWaitMs);
  await ensureStream(jsm, {
    name: names.eventsStream,
    subjects: [names.eventsSubjects],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: 7 * DAY_NS,
  });
  await ensureConsumer(jsm, names.eventsStream, {
    durable_name: names.controlPlaneConsumer,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    deliver_policy: DeliverPolicy.All,
    max_deliver: -1,
  });
  const cancellations = await new Kvm(nc).create(names.cancellationsBucket, { ttl: 7 * 24 * 3600 * 1000, replicas });
  const artifacts = await new Objm(nc).create(names.artifactsBucket, { storage: StorageType.File, replicas });
  return { names, cancellations, artifacts };
}
