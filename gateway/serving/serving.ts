import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import type { AuditLog } from '../audit/audit-log';
import type { ServingConfig } from '../config/config';
import type { Database } from '../db/schema';
import type { ChangeFeed } from '../events/change-feed';
import type { EventBus } from '../events/event-bus';
import type { RegistryService } from '../registry/registry-service';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';
import type { BatchingOptions } from './batching';
import { DataPlane } from './data-plane';
import { Galleries } from './galleries';
import { GalleryRepository } from './gallery-repository';
import { MetricRollups } from './metric-rollups';
import { PredictionLedger } from './prediction-ledger';
import { liveVariants, ServingCatalog } from './serving-catalog';
import { refOf, ServingMetrics } from './serving-metrics';
import { ShadowMirror } from './shadow-mirror';
import { TrafficPolicies } from './traffic-policies';
import { TrafficPolicyRepository } from './traffic-policy-repository';
import { VariantExecutor } from './variant-executor';
import { VariantSessions } from './variant-sessions';

/** Serving as the rest of the gateway sees it: the data plane for the protocol layer, policies and figures for the control plane. */
export interface Serving {
  dataPlane: DataPlane;
  catalog: ServingCatalog;
  /** The only way to change a traffic policy: atomic read-modify-writes with a version check. */
  trafficPolicies: TrafficPolicies;
  metrics: ServingMetrics;
  rollups: MetricRollups;
  /** The k of the retrieval figures (SERVING_RETRIEVAL_K). */
  retrievalK: number;
  /** Writes the pending rollups now (tests, shutdown). */
  flushRollups(): Promise<void>;
  stop(): Promise<void>;
}

/** What the data plane is built from; the composition root hands these over. */
export interface ServingDependencies {
  settings: ServingConfig;
  logger: Logger;
  db: Kysely<Database>;
  registry: RegistryService;
  events: EventBus;
  /** Tells other replicas what this one changed, and hears what they changed. */
  changes: ChangeFeed;
  artifacts: ArtifactStore;
  audit: AuditLog;
}

/** Builds the data plane and ties session lifetimes to the registry's variant events. */
export function startServing({ settings, logger, db, registry, events, changes, artifacts, audit }: ServingDependencies): Serving {
  const defaultBatching: BatchingOptions = { maxBatchSize: settings.batchMaxSize, maxQueueDelayMs: settings.batchMaxDelayMs };
  const rollups = new MetricRollups(db, randomUUID());
  const metrics = new ServingMetrics(rollups);
  const policyRows = new TrafficPolicyRepository(db, audit);
  const catalog = new ServingCatalog(registry, policyRows, events, changes);
  const trafficPolicies = new TrafficPolicies(catalog, policyRows);
  const sessions = new VariantSessions({
    artifacts,
    logger,
    session: { intraOpThreads: settings.intraOpThreads, interOpThreads: settings.interOpThreads, executionProviders: settings.executionProviders },
    shadowNice: settings.shadowNice,
    queueLimit: settings.queueLimit,
    defaultBatching,
    onRun: (model, variant, rows, requests, computeMs) => metrics.ran(refOf(model, variant), rows, computeMs, requests),
  });
  metrics.watchQueues(() => sessions.queueDepths());
  metrics.watchTrafficShares(async () =>
    (await catalog.cached()).flatMap(({ model, variants, policy }) => {
      const tagOf = (id: string) => variants.find((v) => v.id === id)?.tag ?? id;
      const total = policy.routes.reduce((sum, r) => sum + r.weight, 0);
      return [
        ...policy.routes.map((r) => ({ model: model.name, variant: tagOf(r.variantId), role: 'primary' as const, share: total > 0 ? r.weight / total : 0 })),
        ...policy.shadows.map((s) => ({ model: model.name, variant: tagOf(s.variantId), role: 'shadow' as const, share: s.mirrorPercent / 100 })),
      ];
    }),
  );
  const ledger = new PredictionLedger(
    settings.feedbackWindow,
    settings.retrievalK,
    (variant, scores) => metrics.scored(variant, scores),
    (primary, shadow, outcome) => metrics.paired(primary, shadow, outcome),
  );
  const executor = new VariantExecutor(sessions, defaultBatching);
  const galleryRepository = new GalleryRepository(db, audit);
  const galleries = new Galleries(executor, galleryRepository, artifacts, changes, {
    maxItems: settings.galleryMaxItems,
    maxImagePixels: settings.maxImagePixels,
    logger,
  });
  const mirror = new ShadowMirror(executor, metrics, ledger, galleries, logger, settings.retrievalK);
  const dataPlane = new DataPlane(catalog, executor, mirror, galleries, ledger, metrics, { maxImagePixels: settings.maxImagePixels, retrievalK: settings.retrievalK });

  /** A variant that can serve gets its session loaded and the model's gallery embedded, both in the background. */
  const prepare = (model: ModelRecord, variant: VariantRecord) => {
    sessions.warm(model, variant);
    catalog.get(model.name).then((state) => galleries.embedInBackground(state, variant), () => undefined);
  };
  const unsubscribe = [
    events.on('model.registered', ({ model, variant }) => prepare(model, variant)),
    events.on('variant.added', ({ model, variant }) => {
      if (variant.status === 'ready') prepare(model, variant);
    }),
    events.on('variant.status', ({ variant }) => {
      if (variant.status === 'ready') {
        registry.getModelById(variant.modelId).then((model) => prepare(model, variant), () => undefined);
      } else {
        void sessions.unload(variant.id);
      }
    }),
  ];
  // Stored galleries come back after a restart: embedded again, off the request path, by the variants that take traffic.
  galleryRepository
    .modelIds()
    .then((modelIds) =>
      Promise.all(
        modelIds.map(async (modelId) => {
          const state = await catalog.get((await registry.getModelById(modelId)).name);
          for (const variant of liveVariants(state)) galleries.embedInBackground(state, variant);
        }),
      ),
    )
    .catch((error: unknown) => logger.warn({ err: error }, 'reloading the stored galleries failed'));

  const flushRollups = () => rollups.flush();
  const timer = setInterval(() => {
    flushRollups().catch((error: unknown) => logger.warn({ err: error }, 'writing metric rollups failed'));
  }, settings.rollupFlushMs);
  timer.unref();

  return {
    dataPlane,
    catalog,
    trafficPolicies,
    metrics,
    rollups,
    retrievalK: settings.retrievalK,
    flushRollups,
    stop: async () => {
      clearInterval(timer);
      for (const off of unsubscribe) off();
      catalog.close();
      galleries.close();
      await sessions.close();
      await flushRollups().catch((error: unknown) => logger.warn({ err: error }, 'final metric rollup write failed'));
    },
  };
}
