/**
 * The FIMA-Q plugin: `quantizeModel` and its jobs. Jobs go through a transactional outbox to
 * NATS JetStream (NATS_URL set) or to worker processes the gateway starts itself; results come
 * back as variants of the quantized model, served as shadows of their parents by default.
 */
import fs from 'node:fs';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { GatewayPlugin, PluginContext } from '../../gateway/plugin-surface';
import { FileArtifactStore } from '../../workers/common/artifacts/file-artifact-store';
import { EmbeddedControlPlaneTransport, type WorkerProcessCommand } from './transport/embedded-control-plane';
import { NatsControlPlaneTransport } from './transport/nats-control-plane';
import type { ControlPlaneTransport } from '../../workers/common/jobs/transport';
import { loadFimaqConfig, type FimaqConfig } from './fimaq-config';
import { ImageSetPacker } from './image-set-packer';
import { JobEventApplier } from './job-event-applier';
import type { JobRecord } from './job-record';
import { JobRepository } from './job-repository';
import { QuantizationJobResolver, type FimaqResolverContext } from './job-resolver';
import { OutboxDispatcher } from './outbox-dispatcher';
import { QuantizationService } from './quantization-service';
import { jobsMigration } from './migrations/0003_jobs';
import { jobIterationsMigration } from './migrations/0021_job_iterations';
import { JobNotifier } from './job-notifier';
import { JOB_CHANGE_TOPIC, JOB_UPDATED_TOPIC } from './job-topics';
import { addShadow } from './shadow';
import { ROLLOUT_STARTER, type RolloutStarter, type StartRolloutInput } from '../../schema/rollouts';

export interface FimaqPluginOptions {
  /** How to start the embedded worker; defaults to the compiled `workers/main.js` beside this plugin. */
  embeddedWorker?: Omit<WorkerProcessCommand, 'env'>;
  /** Settings instead of the FIMAQ_* environment variables. */
  config?: Partial<FimaqConfig>;
}

function compiledWorker(): Omit<WorkerProcessCommand, 'env'> {
  const entry = path.resolve(__dirname, '..', '..', 'workers', 'main.js');
  if (!fs.existsSync(entry)) throw new Error(`the embedded worker ${entry} does not exist; run \`npm run build\` (or set NATS_URL and run workers)`);
  return { entry, execArgv: [] };
}

/**
 * Opens the job transport and registers its teardown as each part opens, so a start that fails
 * later closes what was opened here.
 */
async function openTransport(context: PluginContext, config: FimaqConfig, options: FimaqPluginOptions, logger: Logger): Promise<ControlPlaneTransport> {
  let transport: ControlPlaneTransport;
  if (context.config.natsUrl) {
    const nc = await connect({ servers: context.config.natsUrl, name: 'vit-gateway fimaq', maxReconnectAttempts: -1 });
    context.onStop(() => nc.drain());
    transport = await NatsControlPlaneTransport.create(nc, {
      namespace: config.natsNamespace,
      replicas: config.natsReplicas,
      cacheDir: context.config.dataDir,
      onUndecodable: (error) => logger.error({ err: error }, 'dropped a malformed job event'),
    });
  } else {
    if (!(context.artifacts instanceof FileArtifactStore)) throw new Error('the embedded job transport needs the file artifact store');
    const command = options.embeddedWorker ?? compiledWorker();
    const env = {
      NATS_URL: '',
      WORKER_ARTIFACTS_DIR: context.artifacts.root,
      LOG_LEVEL: context.config.logLevel,
      WORKER_ID: 'embedded',
      // The in-memory queue dies with the gateway and its jobs run again on the next start, so
      // waiting for a running job would only delay the gateway's shutdown.
      WORKER_SHUTDOWN_GRACE_MS: '0',
    };
    transport = new EmbeddedControlPlaneTransport(context.artifacts, { ...command, env }, config.embeddedWorkers, logger);
  }
  // Registered before `start` opens anything (consumers, worker processes); stopping an unstarted transport is a no-op.
  context.onStop(() => transport.stop());
  return transport;
}

/**
 * Starts the rollout a job asked for. The variant is recorded whatever happens here: a rollout
 * refused now (another one live on the model, the plugin gone since) is logged, not retried.
 */
async function startRollout(rollouts: RolloutStarter | undefined, input: StartRolloutInput, actor: string, logger: Logger): Promise<void> {
  if (!rollouts) {
    logger.error({ actor }, 'the job asked for a rollout but the rollouts plugin is not configured');
    return;
  }
  try {
    const id = await rollouts.startRollout(input, actor);
    logger.info({ actor, rollout: id }, 'rollout of the new variant started');
  } catch (error) {
    logger.error({ err: error, actor }, 'the rollout the job asked for could not start');
  }
}

export function createFimaqPlugin(options: FimaqPluginOptions = {}): GatewayPlugin {
  return {
    name: 'fimaq',
    migrations: { '0003_jobs': jobsMigration, '0021_job_iterations': jobIterationsMigration },
    resolvers: [QuantizationJobResolver],
    async start(context) {
      const config = { ...loadFimaqConfig(), ...options.config };
      const logger = context.logger.child({ plugin: 'fimaq' });
      const transport = await openTransport(context, config, options, logger);
      const jobs = new JobRepository(context.database.db, context.audit);
      const notifier = new JobNotifier((job) => context.pubSub.publish(JOB_UPDATED_TOPIC, job.id, job));
      const notify = (job: JobRecord) => notifier.notify(job);
      // One replica applies each worker event (they share the durable consumer); the others hear
      // of it on the change feed and tell their own subscribers what is stored.
      const changed = (job: JobRecord) => {
        notify(job);
        context.changes.publish(JOB_CHANGE_TOPIC, job.id);
      };
      // Read one after another, so the reads themselves come back in order.
      let reading = Promise.resolve();
      context.onStop(
        context.changes.subscribe(JOB_CHANGE_TOPIC, (jobId) => {
          reading = reading.then(() =>
            jobs.find(jobId).then(
              (job) => job && notify(job),
              (error: unknown) => logger.warn({ err: error, job: jobId }, 'reading a job another replica updated failed'),
            ),
          );
        }),
      );
      const dispatcher = new OutboxDispatcher(jobs, transport, context.artifacts, config.dispatchIntervalMs, logger);
      // Found when used, so the rollouts plugin may be configured before or after this one, or not at all.
      const rollouts = () => context.pluginServices.find<RolloutStarter>(ROLLOUT_STARTER);
      const service = new QuantizationService(context.registry, jobs, new ImageSetPacker(context.artifacts, context.localFiles), () => dispatcher.kick(), changed, logger, rollouts);
      const applier = new JobEventApplier(jobs, context.registry, context.artifacts, transport.artifacts, changed, async (job, variant) => {
        const model = await context.registry.getModelById(job.modelId);
        const actor = `fimaq-job:${job.id}`;
        if (job.request.shadow) await addShadow(context.serving, model, variant, config.shadowMirrorPercent, actor);
        if (job.request.rollout) await startRollout(rollouts(), { ...job.request.rollout, model: model.name, candidate: variant.id, baseline: job.parentVariantId }, actor, logger);
      }, logger);

      await transport.start(applier.apply);
      if (!transport.durable) {
        // The queue died with the previous process; what the database says is unfinished runs again.
        for (const job of await jobs.listUnfinished()) await jobs.redispatch(job.id);
      }
      dispatcher.start();
      context.onStop(() => dispatcher.stop());
      logger.info({ transport: transport.durable ? 'nats' : 'embedded', namespace: config.natsNamespace }, 'fimaq jobs ready');
      const resolverContext: FimaqResolverContext = { config, service };
      return { resolverContext };
    },
  };
}

const plugin = createFimaqPlugin();
export default plugin;
