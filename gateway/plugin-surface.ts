/**
 * Everything of the gateway a plugin may use, in one module: `plugins/**` import from here and
 * nowhere else in `gateway/` (an ESLint rule keeps it so). What is not exported here is the
 * gateway's own business and may change without a plugin noticing.
 */

// The plugin API: what a plugin is, what `start` receives and hands back.
export type { GatewayPlugin, PluginContext, ResolverClass, RunningPlugin, StopStep } from './plugins/plugin-api';
export type { GatewayServices } from './services';

// Errors a user can act on (GraphQL `extensions.code`, HTTP status).
export { badInput, conflict, GatewayError, invalidModel, notFound, type ErrorCode } from './errors';

// The registry's records.
export type { Actor, ModelRecord, ModelTask, NewVariant, VariantRecord, VariantStatus } from './registry/registry-types';
export type { RegistryService } from './registry/registry-service';

// The database: the core's tables (a plugin adds its own with `withTables`), the dialect codec, migrations.
export type { Database, Json, Timestamp } from './db/schema';
export type { DatabaseHandle, DialectName } from './db/database';
export { fromJson, nowIso, toDate, toInteger, toJson, toOptionalDate } from './db/codec';
export type { MigrationFactory } from '../migrations/migration';

// The actor of a GraphQL request (recorded in the audit log).
export { actorOf, type GraphQLContext } from './graphql/graphql-context';

// Announcing changes to the other gateway replicas, and hearing theirs (`context.changes`).
export type { ChangeFeed, ChangeListener } from './events/change-feed';

// Files admins name by path (confined to LOCAL_PATH_ROOTS).
export type { LocalFiles } from './files/local-files';

// The traffic-policy API: read a model's serving state; change its policy by compare-and-set
// (`serving.trafficPolicies.update`).
export type { Serving } from './serving/serving';
export type { ModelServingState } from './serving/serving-catalog';
export type { ShadowRoute, TrafficPolicy, WeightedRoute } from './serving/traffic-policy';
export { MAX_POLICY_UPDATE_ATTEMPTS, type PolicyChange, type PolicyUpdateOptions, type TrafficPolicies } from './serving/traffic-policies';

// Plugins offering each other services by name (fimaq starts rollouts through the rollouts plugin's).
export type { PluginServices } from './plugins/plugin-services';

// The audit log (a plugin records its changes in the transaction that makes them).
export type { AuditLog, NewAuditEntry } from './audit/audit-log';

// Serving figures as stored per minute, and the variant a policy routes to by default.
export { addCounts, emptyCounts, ROLLUP_LATENCY_BUCKETS_MS, type RollupCounts, type RollupRow } from './serving/metric-rollups';
export { defaultVariant } from './serving/serving-catalog';

// The statistics every comparison of variants shares.
export { pairedDifference, wilsonInterval, type Interval, type PairedCounts } from './statistics/proportions';
export { mcnemarExact } from './statistics/mcnemar';
export { quantileRatio, type Histogram } from './statistics/histogram-quantiles';
export { meanInterval, type MomentSums } from './statistics/means';
