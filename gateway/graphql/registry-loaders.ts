import DataLoader from 'dataloader';
import { notFound } from '../errors';
import type { RegistryService } from '../registry/registry-service';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';

/**
 * Request-scoped batching of registry reads for field resolvers that load per parent: all the
 * loads of one nesting level become one statement, and a row read once is not read again in the
 * same request. A new set is made for every GraphQL request, so nothing outlives it; a
 * subscription, whose one context serves every event it sends, batches without caching.
 */
export interface RegistryLoaders {
  /** A model by id; fails with NOT_FOUND when there is none. */
  modelById: DataLoader<string, ModelRecord>;
  /** A variant by id; fails with NOT_FOUND when there is none. */
  variantById: DataLoader<string, VariantRecord>;
  /** A model's variants in creation order. */
  variantsByModelId: DataLoader<string, VariantRecord[]>;
}

/** Keeps statements' parameter lists well under SQLite's and PostgreSQL's bind limits. */
const MAX_BATCH_SIZE = 500;

export function createRegistryLoaders(registry: RegistryService, options: { cache: boolean }): RegistryLoaders {
  const { cache } = options;
  return {
    modelById: new DataLoader<string, ModelRecord>(
      async (ids) => {
        const byId = new Map((await registry.getModelsByIds(ids)).map((m) => [m.id, m]));
        return ids.map((id) => byId.get(id) ?? notFound(`no model with id ${id}`));
      },
      { maxBatchSize: MAX_BATCH_SIZE, cache },
    ),
    variantById: new DataLoader<string, VariantRecord>(
      async (ids) => {
        const byId = new Map((await registry.getVariantsByIds(ids)).map((v) => [v.id, v]));
        return ids.map((id) => byId.get(id) ?? notFound(`no variant with id ${id}`));
      },
      { maxBatchSize: MAX_BATCH_SIZE, cache },
    ),
    variantsByModelId: new DataLoader<string, VariantRecord[]>(
      async (modelIds) => {
        const byModel = new Map<string, VariantRecord[]>(modelIds.map((id) => [id, []]));
        for (const variant of await registry.listVariantsByModelIds(modelIds)) byModel.get(variant.modelId)?.push(variant);
        return modelIds.map((id) => byModel.get(id) ?? []);
      },
      { maxBatchSize: MAX_BATCH_SIZE, cache },
    ),
  };
}
