import packageJson from '../../../package.json';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { badInput } from '../../errors';
import type { RateLimiter } from '../../auth/rate-limits';
import type { Principal } from '../../auth/roles';
import type { DataPlane, FeedbackTruth } from '../../serving/data-plane';
import { errorResponse } from '../errors-middleware';
import type { RequestAuthenticator } from '../http-auth';
import { parseJson } from './json-tensors';

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

/** /classify and /search share one shape: an image body, a count, and the answer's list under its own name. */
const IMAGE_ROUTES = {
  classify: { count: 'top', fallback: DEFAULT_TOP, field: 'predictions', emptyBody: 'send the image file (PNG or JPEG) as the request body' },
  search: { count: 'k', fallback: 10, field: 'results', emptyBody: 'send the query image file (PNG or JPEG) as the request body' },
} as const;

/**
 * The Open Inference Protocol v2 over HTTP (all but /infer, which `infer-endpoint.ts` serves
 * without Express), plus the gateway's conveniences (/classify, /feedback, /gallery, /search).
 * Only wire formats live here; what happens to a request is the data plane's business.
 */
export function inferenceRoutes(options: { dataPlane: DataPlane; auth: RequestAuthenticator; rateLimiter: RateLimiter; maxBodyBytes: number }): Router {
  const { dataPlane, auth, rateLimiter } = options;
  const router = Router();
  const rawBody = express.raw({ type: () => true, limit: options.maxBodyBytes });
  const limited = rateLimiter.middleware('inference');
  const inferenceRole = [auth.require('inference'), limited];

  router.get(['/v2', '/v2/'], (_req, res) => {
    res.json({ name: SERVER_NAME, version: SERVER_VERSION, extensions: EXTENSIONS });
  });

  router.get(['/v2/models/:model', '/v2/models/:model/versions/:version'], inferenceRole, handle(async (req, res) => {
    res.json(await dataPlane.metadata(req.params.model as string, req.params.version as string | undefined));
  }));

  router.get(['/v2/models/:model/ready', '/v2/models/:model/versions/:version/ready'], inferenceRole, handle(async (req, res) => {
    res.json({ ...(await dataPlane.ready(req.params.model as string, req.params.version as string | undefined)), ready: true });
  }));

  for (const kind of ['classify', 'search'] as const) {
    const route = IMAGE_ROUTES[kind];
    router.post([`/v2/models/:model/${kind}`, `/v2/models/:model/versions/:version/${kind}`], inferenceRole, rawBody, handle(async (req, res) => {
      const requestId = res.locals.requestId as string;
      const count = integerParam(req.query[route.count], route.count, route.fallback, MAX_TOP);
      const image = bodyOf(req);
      if (image.length === 0) throw badInput(route.emptyBody);
      const call = { modelName: req.params.model as string, version: req.params.version as string | undefined, requestId, header: (name: string) => req.header(name), image, count };
      const { answer, items } = kind === 'classify' ? await dataPlane.classify(call) : await dataPlane.search(call);
      res.setHeader('x-variant', answer.variant.tag);
      res.json({ model_name: answer.model.name, model_version: answer.variant.tag, id: requestId, [route.field]: items });
    }));
  }
  router.post('/v2/models/:model/feedback', inferenceRole, rawBody, handle(async (req, res) => {
    const body = parseJson(bodyOf(req), 'feedback') as { id?: unknown; label?: unknown; labels?: unknown; relevant?: unknown } | null;
    if (typeof body !== 'object' || body === null || typeof body.id !== 'string') {
      throw badInput('feedback is {"id": "<x-request-id of the answered request>", "label": <name or class index>} (or "labels": [...] for a batch; retrieval: "relevant": [[gallery ids] per row])');
    }
    let truth: FeedbackTruth;
    if (body.relevant !== undefined) {
      const rows = body.relevant;
      if (!Array.isArray(rows) || rows.length === 0 || !rows.every((row) => Array.isArray(row) && row.every((id) => typeof id === 'string'))) {
        throw badInput('"relevant" must be an array with, per row of the request, an array of relevant gallery item ids');
      }
      truth = { relevant: rows as string[][] };
    } else {
      const labels = body.labels !== undefined ? body.labels : [body.label];
      if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string' || typeof l === 'number')) {
        throw badInput('"label" must be a label name or class index ("labels": an array of them)');
      }
      truth = { labels: labels as Array<string | number> };
    }
    const scored = await dataPlane.feedback(req.params.model as string, body.id, truth);
    res.json({ id: body.id, rows: scored.rows, scored_variants: scored.variants });
  }));

  router.post('/v2/models/:model/gallery', auth.require('admin'), limited, rawBody, handle(async (req, res) => {
    const body = parseJson(bodyOf(req), 'gallery upload') as { items?: unknown } | null;
    const items = body && Array.isArray(body.items) ? body.items : undefined;
    if (!items || items.length === 0) throw badInput('the gallery upload is {"items": [{"id": "...", "image": "<base64 PNG or JPEG>", "label"?: "<class>"}, ...]}');
    const decoded = items.map((item: unknown, i) => {
      const entry = item as { id?: unknown; image?: unknown; label?: unknown };
      if (typeof entry?.id !== 'string' || entry.id === '' || typeof entry.image !== 'string') {
        throw badInput(`items[${i}] needs a non-empty string "id" and a base64 "image"`);
      }
      if (entry.label !== undefined && (typeof entry.label !== 'string' || entry.label === '')) throw badInput(`items[${i}]: "label" must be a non-empty string (the item's class)`);
      return { id: entry.id, image: Buffer.from(entry.image, 'base64'), label: entry.label };
    });
    if (new Set(decoded.map((d) => d.id)).size !== decoded.length) throw badInput('gallery item ids must be distinct within one upload');
    const result = await dataPlane.addToGallery(req.params.model as string, decoded, (res.locals.principal as Principal).name);
    res.json({ model_name: req.params.model, size: result.size });
  }));

  // Requests refused before the data plane saw them (body too large, malformed) still count.
  router.use('/v2/models/:model', (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'POST' && /\/(classify|search)$/.test(req.path)) dataPlane.refused(req.params.model as string, error, errorResponse(error).status);
    next(error);
  });

  return router;
}
