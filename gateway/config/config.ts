import path from 'node:path';
import { boolean, byteSize, ConfigError, integer, list, url, type Env } from '../../workers/common/env';
import { DEFAULT_MAX_IMAGE_PIXELS } from '../../workers/data/image';
import type { RateLimit, RateLimitedPlane } from '../auth/rate-limits';
import { ROLES, type Role } from '../auth/roles';
import { DEFAULT_ONNX_ALLOWED_OPS, type OnnxLimits } from '../registry/onnx-limits';

/**
 * The gateway's whole configuration, read once from environment variables by `loadConfig`.
 * Every variable is documented in the README's configuration table; keep the two in step.
 */
export interface GatewayConfig {
  host: string;
  port: number;
  /** Root for the embedded defaults: SQLite file and content-addressed artifacts. */
  dataDir: string;
  /** PostgreSQL connection string; absent means the embedded SQLite file under dataDir. */
  databaseUrl: string | undefined;
  /** NATS server for jobs and artifacts; absent means the in-process transport. */
  natsUrl: string | undefined;
  /** Sets (or re-asserts) the admin token instead of generating one on first start. */
  adminToken: string | undefined;
  /** Development switch: when false every request acts as admin. Never the default. */
  authEnabled: boolean;
  /** Largest artifact upload accepted, in bytes. */
  maxUploadBytes: number;
  /** What a registered ONNX model may contain (nodes, operators). */
  onnxLimits: OnnxLimits;
  /** Largest JSON or GraphQL request body accepted, in bytes. */
  maxRequestBytes: number;
  /** Directories admins may name files in (localPath, dataset paths); DATA_DIR is always one. */
  localPathRoots: string[];
  /** Module specifiers of the plugins to load, in order. */
  plugins: string[];
  logLevel: string;
  /** Requests per token (per client address without one) on each plane; 0 per second: unlimited. */
  rateLimits: Record<RateLimitedPlane, RateLimit>;
  serving: ServingConfig;
  graphql: GraphQLConfig;
}

/** Who a GraphQL limit applies to: a token's role, or no token at all. */
export type GraphQLCaller = Role | 'anonymous';
export const GRAPHQL_CALLERS: readonly GraphQLCaller[] = [...ROLES, 'anonymous'];

/** Static limits a GraphQL document must stay within before it runs (graphql-armor's rules). */
export interface GraphQLQueryLimits {
  maxDepth: number;
  maxAliases: number;
  maxTokens: number;
  maxDirectives: number;
  /** graphql-armor's estimated cost: objects 2, scalars 1, times 1.5 per nesting level. */
  maxCost: number;
}

/** The GraphQL control plane's knobs (GRAPHQL_* variables and GATEWAY_DEBUG_ERRORS). */
export interface GraphQLConfig {
  limits: Record<GraphQLCaller, GraphQLQueryLimits>;
  /**
   * A query is stopped once it has resolved this many fields (the standard introspection query
   * resolves about 3000 on this schema)...
   */
  operationMaxFields: number;
  /** ...or once this many milliseconds have passed since its execution started. */
  operationBudgetMs: number;
  /** Development switch: stack traces in GraphQL error responses. Never the default. */
  debugErrors: boolean;
}

/**
 * Per-caller defaults. Viewers get room for every query the schema offers, including the
 * standard introspection query; admins a little more; inference tokens and anonymous callers
 * cannot read the control plane at all, so they get just enough to be told so.
 */
export const DEFAULT_GRAPHQL_LIMITS: Readonly<Record<GraphQLCaller, GraphQLQueryLimits>> = {
  admin: { maxDepth: 10, maxAliases: 15, maxTokens: 3000, maxDirectives: 20, maxCost: 10000 },
  viewer: { maxDepth: 8, maxAliases: 10, maxTokens: 2000, maxDirectives: 10, maxCost: 5000 },
  inference: { maxDepth: 4, maxAliases: 5, maxTokens: 300, maxDirectives: 5, maxCost: 500 },
  anonymous: { maxDepth: 3, maxAliases: 2, maxTokens: 200, maxDirectives: 2, maxCost: 200 },
};

/** The inference data plane's knobs (SERVING_* and ORT_* variables). */
export interface ServingConfig {
  /** onnxruntime intra-op threads per variant session; 0 lets onnxruntime choose. */
  intraOpThreads: number;
  /** onnxruntime inter-op threads per variant session; 0 lets onnxruntime choose. */
  interOpThreads: number;
  /** onnxruntime execution providers in order of preference, e.g. cuda,cpu. */
  executionProviders: string[];
  /** Requests allowed to wait per variant before 429. */
  queueLimit: number;
  /** Niceness (0..19) of the threads that run shadow requests; 19 lets shadows use idle CPU only. */
  shadowNice: number;
  /** Dynamic batching for models whose policy sets none: rows per run (1 = off). */
  batchMaxSize: number;
  batchMaxDelayMs: number;
  /** Recent requests remembered for /feedback. */
  feedbackWindow: number;
  /** Items per retrieval gallery. */
  galleryMaxItems: number;
  /** The k of every retrieval figure: overlap@k and rank correlation of shadow neighbours, recall@k and mAP@k from feedback. */
  retrievalK: number;
  /** Pixels an uploaded image may declare; larger ones are refused before decoding. */
  maxImagePixels: number;
  /** How often per-minute metric rollups are written to the database. */
  rollupFlushMs: number;
}

/** What loadConfig (and the plugin and worker configs, through the same readers) throws for a bad value. */
export { ConfigError };

const LIMIT_VARIABLES: ReadonlyArray<[keyof GraphQLQueryLimits, string]> = [
  ['maxDepth', 'GRAPHQL_MAX_DEPTH'],
  ['maxAliases', 'GRAPHQL_MAX_ALIASES'],
  ['maxTokens', 'GRAPHQL_MAX_TOKENS'],
  ['maxDirectives', 'GRAPHQL_MAX_DIRECTIVES'],
  ['maxCost', 'GRAPHQL_MAX_COST'],
];

/**
 * One limit per caller from a variable such as `GRAPHQL_MAX_DEPTH=viewer=6,admin=12`; a bare
 * number sets every caller; callers not named keep their default.
 */
function perCaller(env: Env, name: string, fallback: Record<GraphQLCaller, number>): Record<GraphQLCaller, number> {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const parse = (text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < 1 || value > 1_000_000) {
      throw new ConfigError(`${name} must be an integer in 1..1000000 or caller=integer pairs (callers: ${GRAPHQL_CALLERS.join(', ')}), got "${raw}"`);
    }
    return value;
  };
  if (/^\d+$/.test(raw)) {
    const value = parse(raw);
    return Object.fromEntries(GRAPHQL_CALLERS.map((caller) => [caller, value])) as Record<GraphQLCaller, number>;
  }
  const result = { ...fallback };
  for (const pair of raw.split(',')) {
    const [caller, value, ...rest] = pair.split('=').map((s) => s.trim());
    if (rest.length > 0 || value === undefined || !(GRAPHQL_CALLERS as readonly string[]).includes(caller)) {
      throw new ConfigError(`${name} must be an integer or caller=integer pairs (callers: ${GRAPHQL_CALLERS.join(', ')}), got "${raw}"`);
    }
    result[caller as GraphQLCaller] = parse(value);
  }
  return result;
}

function graphqlLimits(env: Env): Record<GraphQLCaller, GraphQLQueryLimits> {
  const limits = Object.fromEntries(GRAPHQL_CALLERS.map((caller) => [caller, { ...DEFAULT_GRAPHQL_LIMITS[caller] }])) as Record<GraphQLCaller, GraphQLQueryLimits>;
  for (const [key, variable] of LIMIT_VARIABLES) {
    const defaults = Object.fromEntries(GRAPHQL_CALLERS.map((caller) => [caller, DEFAULT_GRAPHQL_LIMITS[caller][key]])) as Record<GraphQLCaller, number>;
    const values = perCaller(env, variable, defaults);
    for (const caller of GRAPHQL_CALLERS) limits[caller][key] = values[caller];
  }
  return limits;
}

/** A plane's token bucket from RATE_LIMIT_<PLANE>_PER_SECOND and _BURST (default: twice the rate, at least 1). */
function rateLimit(env: Env, plane: string): RateLimit {
  const perSecond = integer(env, `RATE_LIMIT_${plane}_PER_SECOND`, 0, 0, 1_000_000);
  return { perSecond, burst: integer(env, `RATE_LIMIT_${plane}_BURST`, Math.max(1, 2 * perSecond), 1, 10_000_000) };
}

/** Plugins shipped with the gateway and loaded when GATEWAY_PLUGINS is unset. */
export const DEFAULT_PLUGINS: string[] = ['./plugins/fimaq', './plugins/rollouts'];

/** The repository root, whether the gateway runs from its sources or from dist/. */
export const PROJECT_ROOT = ((codeRoot: string) => (path.basename(codeRoot) === 'dist' ? path.dirname(codeRoot) : codeRoot))(path.resolve(__dirname, '..', '..'));

/** Where admins' paths may point when LOCAL_PATH_ROOTS is unset: the demo assets and Debian's datasets. */
export const DEFAULT_LOCAL_PATH_ROOTS: string[] = [path.join(PROJECT_ROOT, 'deploy', 'demo'), '/usr/share/datasets'];

export function loadConfig(env: Env = process.env): GatewayConfig {
  const adminToken = env.GATEWAY_ADMIN_TOKEN?.trim() || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError('GATEWAY_ADMIN_TOKEN must be at least 16 characters');
  }
  const logLevel = env.LOG_LEVEL?.trim() || 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got "${logLevel}"`);
  }
  const dataDir = path.resolve(env.DATA_DIR?.trim() || 'data');
  const localPathRoots = env.LOCAL_PATH_ROOTS?.trim() ? env.LOCAL_PATH_ROOTS.split(path.delimiter).map((p) => p.trim()).filter(Boolean) : DEFAULT_LOCAL_PATH_ROOTS;
  return {
    host: env.HOST?.trim() || '0.0.0.0',
    port: integer(env, 'PORT', 8080, 0, 65535),
    dataDir,
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    natsUrl: url(env, 'NATS_URL', ['nats:', 'tls:', 'ws:', 'wss:']),
    adminToken,
    authEnabled: !boolean(env, 'GATEWAY_AUTH_DISABLED', false),
    maxUploadBytes: byteSize(env, 'MAX_UPLOAD_BYTES', 512 * 1024 ** 2),
    maxRequestBytes: byteSize(env, 'MAX_REQUEST_BYTES', 64 * 1024 ** 2),
    onnxLimits: {
      maxNodes: integer(env, 'ONNX_MAX_NODES', 100_000, 1, 100_000_000),
      allowedOps: new Set(list(env, 'ONNX_ALLOWED_OPS', [...DEFAULT_ONNX_ALLOWED_OPS])),
    },
    localPathRoots: [dataDir, ...localPathRoots.map((root) => path.resolve(root))],
    plugins: env.GATEWAY_PLUGINS === undefined ? DEFAULT_PLUGINS : list(env, 'GATEWAY_PLUGINS', []),
    logLevel,
    rateLimits: { inference: rateLimit(env, 'INFERENCE'), graphql: rateLimit(env, 'GRAPHQL') },
    serving: {
      intraOpThreads: integer(env, 'ORT_INTRA_OP_THREADS', 0, 0, 1024),
      interOpThreads: integer(env, 'ORT_INTER_OP_THREADS', 0, 0, 1024),
      executionProviders: list(env, 'ORT_EXECUTION_PROVIDERS', ['cpu']),
      queueLimit: integer(env, 'SERVING_QUEUE_LIMIT', 64, 1, 100000),
      shadowNice: integer(env, 'SERVING_SHADOW_NICE', 19, 0, 19),
      batchMaxSize: integer(env, 'SERVING_BATCH_MAX_SIZE', 1, 1, 1024),
      batchMaxDelayMs: integer(env, 'SERVING_BATCH_MAX_DELAY_MS', 2, 0, 1000),
      feedbackWindow: integer(env, 'SERVING_FEEDBACK_WINDOW', 100000, 1, 10000000),
      galleryMaxItems: integer(env, 'SERVING_GALLERY_MAX_ITEMS', 100000, 1, 10000000),
      retrievalK: integer(env, 'SERVING_RETRIEVAL_K', 10, 1, 1000),
      maxImagePixels: integer(env, 'MAX_IMAGE_PIXELS', DEFAULT_MAX_IMAGE_PIXELS, 1, 2 ** 30),
      rollupFlushMs: integer(env, 'SERVING_ROLLUP_FLUSH_MS', 10000, 100, 3600000),
    },
    graphql: {
      limits: graphqlLimits(env),
      operationMaxFields: integer(env, 'GRAPHQL_OPERATION_MAX_FIELDS', 5000, 1, 100000000),
      operationBudgetMs: integer(env, 'GRAPHQL_OPERATION_BUDGET_MS', 500, 1, 3600000),
      debugErrors: boolean(env, 'GATEWAY_DEBUG_ERRORS', false),
    },
  };
}
