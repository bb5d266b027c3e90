import { Router } from 'express';
import type { ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import { GatewayError } from '../errors';
import type { RegistryRepository } from '../registry/registry-repository';
import type { RequestAuthenticator } from './http-auth';

/**
 * `POST /v1/artifacts`: the raw request body becomes a content-addressed artifact, streamed to
 * disk while hashed, refused past the size limit. Answers `{ sha256, size }` for registerModel.
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
  return router;
}
