/**
 * The rollouts plugin: canary rollouts of a candidate variant (typically a quantized one) against
 * its baseline. Traffic steps up while significance-aware guardrails hold (agreement, paired
 * accuracy, p99 latency ratio, error rate, from the stored per-minute rollups), the candidate is
 * promoted after the last step and rolled back as soon as a guardrail is shown violated. State,
 * event log and the controller's lease live in the database, so any replica resumes a rollout.
 * It offers `quantizeModel(rollout:)` its starter as the plugin service ROLLOUT_STARTER.
 */
import { randomUUID } from 'node:crypto';
import type { GatewayPlugin } from '../../gateway/plugin-surface';
import { ROLLOUT_STARTER, type RolloutStarter } from '../../schema/rollouts';
import { rolloutsMigration } from './migrations/rollouts_0001_rollouts';
import { RolloutController } from './rollout-controller';
import { RolloutMetrics, type LiveRollout } from './rollout-metrics';
import { RolloutRepository } from './rollout-repository';
import { RolloutResolver, type RolloutsResolverContext } from './rollout-resolver';
import { RolloutService } from './rollout-service';
import { loadRolloutsConfig, type RolloutsConfig } from './rollouts-config';

export interface RolloutsPluginOptions {
  /** Settings instead of the ROLLOUT_* environment variables. */
  config?: Partial<RolloutsConfig>;
}

export function createRolloutsPlugin(options: RolloutsPluginOptions = {}): GatewayPlugin {
  return {
    name: 'rollouts',
    migrations: { rollouts_0001_rollouts: rolloutsMigration },
    resolvers: [RolloutResolver],
    start(context) {
      const config = { ...loadRolloutsConfig(), ...options.config };
      const logger = context.logger.child({ plugin: 'rollouts' });
      const { registry } = context;
      const repository = new RolloutRepository(context.database.db, context.audit);
      const live = async (): Promise<LiveRollout[]> => {
        const rollouts = (await repository.listWork()).filter((r) => r.status === 'running' || r.status === 'paused');
        return Promise.all(
          rollouts.map(async (r) => ({
            rollout: r.id,
            model: (await registry.getModelById(r.modelId)).name,
            candidate: (await registry.getVariant(r.candidateVariantId)).tag,
            step: r.stepIndex + 1,
            trafficPercent: r.plan.steps[r.stepIndex].trafficPercent,
            paused: r.status === 'paused',
          })),
        );
      };
      const metrics = new RolloutMetrics(context.serving.metrics.registry, live);
      const service = new RolloutService(repository, registry, context.serving, context.pubSub, metrics, logger);
      const controller = new RolloutController(service, repository, randomUUID(), config, logger);
      controller.start();
      context.onStop(() => controller.stop());
      context.onStop(context.pluginServices.provide<RolloutStarter>(ROLLOUT_STARTER, service));
      logger.info({ intervalMs: config.intervalMs, leaseMs: config.leaseMs }, 'rollout controller running');
      const resolverContext: RolloutsResolverContext = { service, registry };
      return { resolverContext };
    },
  };
}

const plugin = createRolloutsPlugin();
export default plugin;
