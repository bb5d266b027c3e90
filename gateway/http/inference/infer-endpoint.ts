import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { Logger } from 'pino';
import { badInput, GatewayError, RetryLaterError } from '../../errors';
import type { RateLimiter } from '../../auth/rate-limits';
import type { DataPlane } from '../../serving/data-plane';
import { errorResponse } from '../errors-middleware';
import type { RequestAuthenticator } from '../http-auth';
import { requestIdFrom } from '../request-id';
import { decodeInferenceRequest, encodeInferenceResponse, HEADER_LENGTH } from './inference-codec';

export interface InferEndpointOptions {
  dataPlane: DataPlane;
  auth: RequestAuthenticator;
  rateLimiter: RateLimiter;
  maxBodyBytes: number;
  logger: Logger;
}

/** `/v2/models/{model}[/versions/{version}]/infer`, query string and trailing slash allowed. */
const INFER_PATH = /^\/v2\/models\/([^/?]+)(?:\/versions\/([^/?]+))?\/infer\/?(?:\?.*)?$/;

const DECOMPRESSORS: Record<string, () => NodeJS.ReadWriteStream> = { gzip: createGunzip, deflate: createInflate, br: createBrotliDecompress };

function pathParameter(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badInput(`the path segment ${JSON.stringify(raw)} is not valid percent-encoding`);
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const tooLarge = (limit: number) => new GatewayError('PAYLOAD_TOO_LARGE', `request body is larger than the limit of ${limit} bytes`);

/** The whole body, decompressed when the request says so, refused past `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (Number(req.headers['content-length']) > limit) return Promise.reject(tooLarge(limit));
  const encoding = (headerOf(req, 'content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity' && !DECOMPRESSORS[encoding]) return Promise.reject(badInput(`unsupported Content-Encoding "${encoding}" (gzip, deflate, br or none)`));
  const source: Readable = encoding === 'identity' ? req : (req.pipe(DECOMPRESSORS[encoding]()) as unknown as Readable);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    source.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, so the connection stays usable.
      if (size > limit) reject(tooLarge(limit));
      else chunks.push(chunk);
    });
    source.on('end', () => resolve(Buffer.concat(chunks, size)));
    source.on('error', (error: Error) => reject(badInput(`the request body could not be read: ${error.message}`)));
  });
}

function sendError(res: ServerResponse, error: unknown, status: number, message: string, requestId: string, logger: Logger): void {
  if (status >= 500) logger.error({ err: error, requestId }, 'inference request failed');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) };
  if (error instanceof RetryLaterError) headers['retry-after'] = String(error.retryAfterSeconds);
  if (status === 413) headers.connection = 'close';
  res.writeHead(status, headers).end(body);
}

/**
 * The protocol's infer endpoint on node:http directly. It is the data plane's hot path, and
 * Express's router, body parser and response helpers cost about 0.2 ms per request here, a
 * fifth of all the gateway adds to a batch-1 inference; the other routes stay on Express.
 * Returns a request listener that answers true when the request was its own.
 */
export function inferEndpoint(options: InferEndpointOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { dataPlane, auth, rateLimiter, maxBodyBytes, logger } = options;

  async function serve(req: IncomingMessage, res: ServerResponse, match: RegExpExecArray): Promise<void> {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    res.setHeader('x-request-id', requestId);
    let modelName = match[1];
    try {
      modelName = pathParameter(match[1]);
      const version = match[2] === undefined ? undefined : pathParameter(match[2]);
      rateLimiter.check('inference', await auth.authorize(req.headers.authorization, 'inference'), req.socket.remoteAddress);
      const body = await readBody(req, maxBodyBytes);
      const { inputs } = await dataPlane.metadata(modelName, version);
      const decoded = decodeInferenceRequest(body, headerOf(req, HEADER_LENGTH), () => (inputs.length === 1 ? inputs[0] : undefined));
      const answer = await dataPlane.infer({
        modelName,
        version,
        requestId,
        header: (name) => headerOf(req, name),
        inputs: decoded.inputs,
        outputs: decoded.outputs.map((o) => o.name),
      });
      const encoded = encodeInferenceResponse(decoded, { modelName: answer.model.name, modelVersion: answer.variant.tag, id: decoded.id ?? requestId, outputs: answer.outputs });
      const headers: Record<string, string | number> = { 'x-variant': answer.variant.tag, 'content-type': encoded.contentType, 'content-length': encoded.body.length };
      if (encoded.headerLength !== undefined) headers['inference-header-content-length'] = String(encoded.headerLength);
      res.writeHead(200, headers).end(encoded.body);
    } catch (error) {
      const { status, message } = errorResponse(error);
      dataPlane.refused(modelName, error, status);
      sendError(res, error, status, message, requestId, logger);
    }
  }

  return (req, res) => {
    const match = req.method === 'POST' ? INFER_PATH.exec(req.url ?? '') : null;
    if (!match) return false;
    void serve(req, res, match);
    return true;
  };
}
