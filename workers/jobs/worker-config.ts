import os from 'node:os';
import path from 'node:path';
import { ConfigError, integer, text, type Env } from '../common/env';

/** The worker process's configuration, from environment variables (documented in the README). */
export interface WorkerConfig {
  /** NATS server; absent means the embedded transport (the worker must be the gateway's child). */
  natsUrl: string | undefined;
  /** Prefix of every stream, consumer and bucket name (shared with the gateway's FIMAQ_NATS_NAMESPACE). */
  namespace: string;
  /** JetStream copies of the job streams and buckets when this side creates them (FIMAQ_NATS_REPLICAS, shared with the gateway). */
  natsReplicas: number;
  workerId: string;
  concurrency: number;
  maxAttempts: number;
  heartbeatMs: number;
  ackWaitMs: number;
  retryDelayMs: number;
  shutdownGraceMs: number;
  /** Embedded mode: the gateway's artifact directory. NATS mode: local cache of fetched artifacts. */
  artifactsDir: string;
  engineModule: string | undefined;
  logLevel: string;
}

export function loadWorkerConfig(env: Env = process.env): WorkerConfig {
  const dataDir = path.resolve(text(env, 'DATA_DIR', 'data'));
  const config: WorkerConfig = {
    natsUrl: text(env, 'NATS_URL'),
    namespace: text(env, 'FIMAQ_NATS_NAMESPACE', 'fimaq'),
    natsReplicas: integer(env, 'FIMAQ_NATS_REPLICAS', 1, 1, 5),
    workerId: text(env, 'WORKER_ID', `${os.hostname()}-${process.pid}`),
    concurrency: integer(env, 'WORKER_CONCURRENCY', 1, 1, 64),
    maxAttempts: integer(env, 'JOB_MAX_ATTEMPTS', 3, 1, 100),
    heartbeatMs: integer(env, 'WORKER_HEARTBEAT_MS', 5000, 100, 600_000),
    ackWaitMs: integer(env, 'JOB_ACK_WAIT_MS', 30_000, 1000, 3_600_000),
    retryDelayMs: integer(env, 'JOB_RETRY_DELAY_MS', 5000, 0, 3_600_000),
    shutdownGraceMs: integer(env, 'WORKER_SHUTDOWN_GRACE_MS', 30_000, 0, 3_600_000),
    artifactsDir: path.resolve(text(env, 'WORKER_ARTIFACTS_DIR', path.join(dataDir, 'worker-cache'))),
    engineModule: text(env, 'WORKER_ENGINE_MODULE'),
    logLevel: text(env, 'LOG_LEVEL', 'info'),
  };
  if (config.heartbeatMs >= config.ackWaitMs) {
    throw new ConfigError(`WORKER_HEARTBEAT_MS (${config.heartbeatMs}) must be below JOB_ACK_WAIT_MS (${config.ackWaitMs}), or running jobs get redelivered`);
  }
  return config;
}
