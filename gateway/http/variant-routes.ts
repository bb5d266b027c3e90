import { Router } from 'express';
import type { RegistryService } from '../registry/registry-service';
import { variantCard } from '../registry/variant-card';
import type { RequestAuthenticator } from './http-auth';

/**
 * `GET /v1/variants/{id}/card`: the variant's model card as JSON. Saved as `<name>.card.json`
 * beside the variant's ONNX file (`GET /v1/artifacts/{sha256}`, saved as `<name>.onnx`), it is
 * all `fimaq evaluate` needs besides `--data`. Viewers may read it: it holds nothing the
 * GraphQL queries do not show them.
 */
export function variantRoutes(options: { registry: RegistryService; auth: RequestAuthenticator }): Router {
  const router = Router();
  router.get('/v1/variants/:id/card', options.auth.require('viewer'), async (req, res, next) => {
    try {
      const variant = await options.registry.getVariant(String(req.params.id));
      const model = await options.registry.getModelById(variant.modelId);
      res.status(200).json(variantCard(model, variant));
    } catch (error) {
      next(error);
    }
  });
  return router;
}
