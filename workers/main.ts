/**
 * The quantization worker process (`npm run worker`): pulls jobs from NATS JetStream when
 * NATS_URL is set, else serves the gateway that forked it as its embedded worker.
 */
import os from 'node:os';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import { FileArtifactStore } from './common/artifacts/file-artifact-store';
import type { WorkerCapabilities } from './common/jobs/messages';
import { initBackend } from './engine/backend';
import { IpcWorkerTransport } from './jobs/embedded/ipc-worker-transport';
import { loadEngine } from './jobs/engine';
import { NatsWorkerTransport } from './jobs/nats/nats-worker';
import type { WorkerTransport } from './common/jobs/transport';
import { loadWorkerConfig, type WorkerConfig } from './jobs/worker-config';
import { WorkerRuntime } from './jobs/worker-runtime';

async function capabilities(config: WorkerConfig): Promise<WorkerCapabilities> {
  const backend = await initBackend();
  const cpus = os.cpus();
  const device = backend === 'tensorflow-gpu'
    ? `gpu${process.env.CUDA_VISIBLE_DEVICES ? ` ${process.env.CUDA_VISIBLE_DEVICES}` : ''}`
    : `cpu ${cpus[0]?.model.trim() ?? 'unknown'} x${cpus.length}`;
  return { workerId: config.workerId, host: os.hostname(), backend, device, concurrency: config.concurrency };
}

async function openTransport(config: WorkerConfig, logger: Logger): Promise<{ transport: WorkerTransport; nc?: NatsConnection }> {
  const onUndecodable = (error: Error) => logger.error({ err: error }, 'dropped a malformed job message');
  if (config.natsUrl) {
    const nc = await connect({ servers: config.natsUrl, name: `fimaq-worker ${config.workerId}`, maxReconnectAttempts: -1 });
    const transport = await NatsWorkerTransport.create(nc, {
      namespace: config.namespace, replicas: config.natsReplicas, ackWaitMs: config.ackWaitMs, cacheDir: config.artifactsDir, onUndecodable,
    });
    return { transport, nc };
  }
  if (!process.send) throw new Error('NATS_URL is not set: a standalone worker needs NATS (the embedded worker is started by the gateway)');
  return { transport: new IpcWorkerTransport(new FileArtifactStore(config.artifactsDir)) };
}

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = pino({ level: config.logLevel, base: { service: 'worker', worker: config.workerId } });
  const { transport, nc } = await openTransport(config, logger);
  const runtime = new WorkerRuntime({
    transport,
    engine: loadEngine(config.engineModule),
    capabilities: await capabilities(config),
    logger,
    concurrency: config.concurrency,
    maxAttempts: config.maxAttempts,
    heartbeatMs: config.heartbeatMs,
    retryDelayMs: config.retryDelayMs,
    progressIntervalMs: 500,
  });
  runtime.start();
  logger.info({ transport: config.natsUrl ? 'nats' : 'embedded', concurrency: config.concurrency }, 'worker ready');

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'stopping: no new jobs; finishing or handing back running ones');
    runtime
      .stop(config.shutdownGraceMs)
      .then(() => transport.close())
      .then(() => nc?.drain())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // The embedded worker follows its gateway: when the IPC channel closes, the parent is gone.
  process.on('disconnect', () => shutdown('parent disconnected'));
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
