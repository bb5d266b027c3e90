import packageJson from '../../../package.json';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { badInput, GatewayError } from '../../errors';
import type { TensorSignature } from '../../registry/model-signature';
import type { VariantRecord } from '../../registry/registry-types';
import type { Serving } from '../../serving/serving';
import { OverloadedError } from '../../serving/serving-errors';
import { defaultVariant, variantByVersion, type ModelServingState } from '../../serving/serving-catalog';
import type { RequestAuthenticator } from '../http-auth';
import { parseJson } from './json-tensors';
import { countRefusedRequest } from './refused-requests';

const SERVER_NAME = 'vit-gateway';
const SERVER_VERSION: string = packageJson.version;
/** Protocol extensions this server speaks beyond the core (reported by GET /v2). */
export const EXTENSIONS = ['binary_tensor_data', 'classify', 'feedback', 'gallery_search'];
const DEFAULT_TOP = 5;
const MAX_TOP = 1000;

type Handler = (req: Request, res: Response) => Promise<void>;

/** Express 5 routes with async handlers: every rejection reaches the error middleware. */
const handle = (fn: Handler) => (req: Request, res: Response, next: NextFunction) => fn(req, res).catch(next);

function integerParam(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw badInput(`${name} must be an integer in 1..${max}`);
  return n;
}

function bodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

function modelMetadata(state: ModelServingState, variant: VariantRecord | undefined) {
  const ready = state.variants.filter((v) => v.status === 'ready');
  const describe = (t: TensorSignature) => ({ name: t.name, datatype: t.datatype, shape: t.shape });
  return {
    name: state.model.name,
    versions: ready.map((v) => v.tag),
    platform: 'onnxruntime_onnx',
    inputs: (variant?.signature.inputs ?? []).map(describe),
    outputs: (variant?.signature.outputs ?? []).map(describe),
    properties: { task: state.model.task, ...(variant ? { variant_id: variant.id, precision: variant.precision } : {}) },
  };
}

/**
 * The Open Inference Protocol v2 over HTTP (all but /infer, which `infer-endpoint.ts` serves
 * without Express), plus the gateway's conveniences (/classify, /feedback, /gallery, /search) and
 * /metrics. Only wire formats live here; what happens to a request is the serving layer's business.
 */
export function inferenceRoutes(options: { serving: Serving; auth: RequestAuthenticator; maxBodyBytes: number }): Router {
  const { serving, auth } = options;
  const { inference, catalog } = serving;
  const router = Router();
  const rawBody = express.raw({ type: () => true, limit: options.maxBodyBytes });
  const inferenceRole = auth.require('inference');

  router.get('/metrics', handle(async (_req, res) => {
    res.setHeader('content-type', serving.metrics.registry.contentType);
    res.send(await serving.metrics.registry.metrics());
  }));

  router.get(['/v2', '/v2/'], (_req, res) => {
    res.json({ name: SERVER_NAME, version: SERVER_VERSION, extensions: EXTENSIONS });
  });

  router.get(['/v2/models/:model', '/v2/models/:model/versions/:version'], inferenceRole, handle(async (req, res) => {
    const state = await catalog.get(req.params.model as string);
    const version = req.params.version as string | undefined;
    res.json(modelMetadata(state, version === undefined ? defaultVariant(state) : variantByVersion(state, version)));
  }));

  router.get(['/v2/models/:model/ready', '/v2/models/:model/versions/:version/ready'], inferenceRole, handle(async (req, res) => {
    const state = await catalog.get(req.params.model as string);
    const version = req.params.version as string | undefined;
    const variant = version === undefined ? defaultVariant(state) : variantByVersion(state, version);
    if (!variant || variant.status !== 'ready') {
      throw new GatewayError('UNAVAILABLE', `model ${state.model.name}${version ? `/${version}` : ''} has no ready variant`);
    }
    // Ready means the session is loaded; asking loads it, so probes warm a fresh replica.
    await serving.sessions.runner(state.model, variant);
    res.json({ name: state.model.name, version: variant.tag, ready: true });
  }));

  router.post(['/v2/models/:model/classify', '/v2/models/:model/versions/:version/classify'], inferenceRole, rawBody, handle(async (req, res) => {
    const requestId = res.locals.requestId as string;
    const top = integerParam(req.query.top, 'top', DEFAULT_TOP, MAX_TOP);
    const image = bodyOf(req);
    if (image.length === 0) throw badInput('send the image file (PNG or JPEG) as the request body');
    const { answer, predictions } = await inference.classify({
      modelName: req.params.model as string,
      version: req.params.version as string | undefined,
      requestId,
      header: (name) => req.header(name),
      image,
      top,
    });
    res.setHeader('x-variant', answer.variant.tag);
    res.json({ model_name: answer.model.name, model_version: answer.variant.tag, id: requestId, predictions });
  }));

  router.post(['/v2/models/:model/search', '/v2/models/:model/versions/:version/search'], inferenceRole, rawBody, handle(async (req, res) => {
    const requestId = res.locals.requestId as string;
    const k = integerParam(req.query.k, 'k', 10, MAX_TOP);
    const image = bodyOf(req);
    if (image.length === 0) throw badInput('send the query image file (PNG or JPEG) as the request body');
    const { answer, results } = await inference.search({
      modelName: req.params.model as string,
      version: req.params.version as string | undefined,
      requestId,
      header: (name) => req.header(name),
      image,
      k,
    });
    res.setHeader('x-variant', answer.variant.tag);
    res.json({ model_name: answer.model.name, model_version: answer.variant.tag, id: requestId, results });
  }));

  router.post('/v2/models/:model/feedback', inferenceRole, rawBody, handle(async (req, res) => {
    const body = parseJson(bodyOf(req), 'feedback') as { id?: unknown; label?: unknown; labels?: unknown } | null;
    if (typeof body !== 'object' || body === null || typeof body.id !== 'string') {
      throw badInput('feedback is {"id": "<x-request-id of the answered request>", "label": <name or class index>} (or "labels": [...] for a batch)');
    }
    const labels = body.labels !== undefined ? body.labels : [body.label];
    if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string' || typeof l === 'number')) {
      throw badInput('"label" must be a label name or class index ("labels": an array of them)');
    }
    const scored = await inference.feedback(req.params.model as string, body.id, labels as Array<string | number>);
    res.json({ id: body.id, rows: scored.rows, scored_variants: scored.variants });
  }));

  router.post('/v2/models/:model/gallery', auth.require('admin'), rawBody, handle(async (req, res) => {
    const body = parseJson(bodyOf(req), 'gallery upload') as { items?: unknown } | null;
    const items = body && Array.isArray(body.items) ? body.items : undefined;
    if (!items || items.length === 0) throw badInput('the gallery upload is {"items": [{"id": "...", "image": "<base64 PNG or JPEG>"}, ...]}');
    const decoded = items.map((item: unknown, i) => {
      const entry = item as { id?: unknown; image?: unknown };
      if (typeof entry?.id !== 'string' || entry.id === '' || typeof entry.image !== 'string') {
        throw badInput(`items[${i}] needs a non-empty string "id" and a base64 "image"`);
      }
      return { id: entry.id, image: Buffer.from(entry.image, 'base64') };
    });
    if (new Set(decoded.map((d) => d.id)).size !== decoded.length) throw badInput('gallery item ids must be distinct within one upload');
    const result = await inference.addToGallery(req.params.model as string, decoded);
    res.json({ model_name: req.params.model, size: result.size });
  }));

  // Requests refused before the serving layer saw them (body too large, malformed) still count.
  router.use('/v2/models/:model', (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'POST' && /\/(classify|search)$/.test(req.path)) countRefusedRequest(serving, req.params.model as string, error);
    if (error instanceof OverloadedError) res.setHeader('Retry-After', String(error.retryAfterSeconds));
    next(error);
  });

  return router;
}
