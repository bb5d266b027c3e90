import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import { isSha256, type ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import { badInput, GatewayError, notFound } from '../errors';
import type { RegistryRepository } from '../registry/registry-repository';
import { ONNX_MEDIA_TYPE } from '../registry/registry-types';
import type { RequestAuthenticator } from './http-auth';

/**
 * `POST /v1/artifacts`: the raw request body becomes a content-addressed artifact, streamed to
 * disk while hashed, refused past the size limit. Answers `{ sha256, size }` for registerModel.
 * `GET /v1/artifacts/{sha256}`: an uploaded or registered file (a variant's ONNX model), streamed.
 * Both need the admin role: a model's weights are what a leaked read-only token must not carry away.
 */
export function artifactRoutes(options: {
  artifacts: ArtifactStore;
  repository: RegistryRepository;
  auth: RequestAuthenticator;
  maxBytes: number;
}): Router {
  const router = Router();
  router.post('/v1/artifacts', options.auth.require('admin'), async (req, res, next) => {
    try {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        // Refuse before reading: the client learns at once and nothing touches the disk.
        throw new GatewayError('PAYLOAD_TOO_LARGE', `artifact is larger than the limit of ${options.maxBytes} bytes`);
      }
      const mediaType = req.headers['content-type'] ?? 'application/octet-stream';
      const stored = await options.artifacts.put(req, { maxBytes: options.maxBytes });
      if (stored.size === 0) {
        await options.artifacts.delete(stored.sha256);
        throw new GatewayError('BAD_USER_INPUT', 'the request body is empty; send the file as the raw body');
      }
      await options.repository.recordArtifact(stored.sha256, stored.size, mediaType);
      res.status(201).json(stored);
    } catch (error) {
      // Unread bytes of a refused upload would otherwise stall the connection.
      if (!req.complete) {
        res.setHeader('Connection', 'close');
        req.resume();
      }
      next(error);
    }
  });

  router.get('/v1/artifacts/:sha256', options.auth.require('admin'), async (req, res, next) => {
    try {
      const sha256 = String(req.params.sha256);
      if (!isSha256(sha256)) throw badInput(`an artifact is named by its sha256: 64 lowercase hex digits, got "${sha256}"`);
      // Only files the registry recorded are served; the store also holds gallery images and
      // packed calibration sets, which are the gateway's own working data.
      const recorded = await options.repository.findArtifact(sha256);
      if (!recorded || !(await options.artifacts.has(sha256))) throw notFound(`no artifact with sha256 ${sha256}`);
      const file = await options.artifacts.localPath(sha256);
      const stream = fs.createReadStream(file);
      await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
      const extension = recorded.mediaType === ONNX_MEDIA_TYPE ? '.onnx' : '';
      res.status(200);
      res.setHeader('content-type', recorded.mediaType);
      res.setHeader('content-length', String(recorded.size));
      res.setHeader('content-disposition', `attachment; filename="${sha256}${extension}"`);
      res.setHeader('x-content-type-options', 'nosniff');
      await pipeline(stream, res);
    } catch (error) {
      next(error);
    }
  });
  return router;
}
