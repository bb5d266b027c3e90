import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { fromJson, nowIso, toDate, toInteger, toJson } from '../db/codec';
import type { Database, ModelsTable, VariantsTable } from '../db/schema';
import type { Preprocessing } from '../../workers/common/preprocessing';
import type { ArtifactRecord, ModelRecord, ModelSignature, ModelTask, NewVariant, VariantRecord, VariantStatus } from './registry-types';
import { ONNX_MEDIA_TYPE } from './registry-types';

type Executor = Kysely<Database> | Transaction<Database>;

function toModel(row: Selectable<ModelsTable>): ModelRecord {
  return {
    id: row.id,
    name: row.name,
    task: row.task as ModelTask,
    description: row.description,
    labels: fromJson<string[]>(row.labels),
    preprocessing: fromJson<Preprocessing>(row.preprocessing),
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

function toVariant(row: Selectable<VariantsTable>): VariantRecord {
  return {
    id: row.id,
    modelId: row.model_id,
    parentVariantId: row.parent_variant_id,
    tag: row.tag,
    precision: row.precision,
    method: row.method,
    config: fromJson<Record<string, unknown>>(row.config),
    metrics: fromJson<Record<string, unknown>>(row.metrics),
    signature: fromJson<ModelSignature>(row.signature),
    artifactSha256: row.artifact_sha256,
    artifactSize: toInteger(row.artifact_size),
    status: row.status as VariantStatus,
    statusReason: row.status_reason,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

/** Registry rows in and out; every dialect difference stops here. */
export class RegistryRepository {
  constructor(private readonly db: Kysely<Database>) {}

  transaction<T>(work: (tx: RegistryRepository) => Promise<T>): Promise<T> {
    return this.db.transaction().execute((tx) => work(new RegistryRepository(tx as unknown as Kysely<Database>)));
  }

  get executor(): Executor {
    return this.db;
  }

  async recordArtifact(sha256: string, size: number, mediaType: string): Promise<void> {
    await this.db
      .insertInto('artifacts')
      .values({ sha256, size, media_type: mediaType, created_at: nowIso() })
      .onConflict((oc) => oc.column('sha256').doNothing())
      .execute();
  }

  /**
   * Records an artifact that onnxruntime loaded as a model: its media type becomes application/onnx
   * whatever the upload's Content-Type said (curl sends form-urlencoded by default).
   */
  async recordModelArtifact(sha256: string, size: number): Promise<void> {
    await this.db
      .insertInto('artifacts')
      .values({ sha256, size, media_type: ONNX_MEDIA_TYPE, created_at: nowIso() })
      .onConflict((oc) => oc.column('sha256').doUpdateSet({ media_type: ONNX_MEDIA_TYPE }))
      .execute();
  }

  async findArtifact(sha256: string): Promise<ArtifactRecord | undefined> {
    const row = await this.db.selectFrom('artifacts').selectAll().where('sha256', '=', sha256).executeTakeFirst();
    return row && { sha256: row.sha256, size: toInteger(row.size), mediaType: row.media_type };
  }

  async insertModel(model: Omit<ModelRecord, 'id' | 'createdAt' | 'updatedAt'>): Promise<ModelRecord> {
    const now = nowIso();
    const row = {
      id: randomUUID(),
      name: model.name,
      task: model.task,
      description: model.description,
      labels: toJson(model.labels),
      preprocessing: toJson(model.preprocessing),
      created_at: now,
      updated_at: now,
    };
    await this.db.insertInto('models').values(row).execute();
    return toModel(row);
  }

  async insertVariant(variant: NewVariant): Promise<VariantRecord> {
    const now = nowIso();
    const row = {
      id: randomUUID(),
      model_id: variant.modelId,
      parent_variant_id: variant.parentVariantId,
      tag: variant.tag,
      precision: variant.precision,
      method: variant.method,
      config: toJson(variant.config),
      metrics: toJson(variant.metrics),
      signature: toJson(variant.signature),
      artifact_sha256: variant.artifactSha256,
      artifact_size: variant.artifactSize,
      status: variant.status,
      status_reason: null,
      created_at: now,
      updated_at: now,
    };
    await this.db.insertInto('variants').values(row).execute();
    return toVariant(row);
  }

  async listModels(): Promise<ModelRecord[]> {
    const rows = await this.db.selectFrom('models').selectAll().orderBy('name').execute();
    return rows.map(toModel);
  }

  async findModelByName(name: string): Promise<ModelRecord | undefined> {
    const row = await this.db.selectFrom('models').selectAll().where('name', '=', name).executeTakeFirst();
    return row && toModel(row);
  }

  async findModelById(id: string): Promise<ModelRecord | undefined> {
    const row = await this.db.selectFrom('models').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toModel(row);
  }

  async listVariants(modelId: string): Promise<VariantRecord[]> {
    const rows = await this.db
      .selectFrom('variants')
      .selectAll()
      .where('model_id', '=', modelId)
      .orderBy('created_at')
      .orderBy('tag')
      .execute();
    return rows.map(toVariant);
  }

  /** Variants of several models in one statement, each model's in creation order. */
  async listVariantsByModelIds(modelIds: readonly string[]): Promise<VariantRecord[]> {
    if (modelIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('variants')
      .selectAll()
      .where('model_id', 'in', [...modelIds])
      .orderBy('created_at')
      .orderBy('tag')
      .execute();
    return rows.map(toVariant);
  }

  async findModelsByIds(ids: readonly string[]): Promise<ModelRecord[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('models').selectAll().where('id', 'in', [...ids]).execute();
    return rows.map(toModel);
  }

  async findVariantsByIds(ids: readonly string[]): Promise<VariantRecord[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.selectFrom('variants').selectAll().where('id', 'in', [...ids]).execute();
    return rows.map(toVariant);
  }

  async listVariantsByStatus(status: VariantStatus): Promise<VariantRecord[]> {
    const rows = await this.db.selectFrom('variants').selectAll().where('status', '=', status).execute();
    return rows.map(toVariant);
  }

  async findVariant(id: string): Promise<VariantRecord | undefined> {
    const row = await this.db.selectFrom('variants').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toVariant(row);
  }

  async findVariantByTag(modelId: string, tag: string): Promise<VariantRecord | undefined> {
    const row = await this.db
      .selectFrom('variants')
      .selectAll()
      .where('model_id', '=', modelId)
      .where('tag', '=', tag)
      .executeTakeFirst();
    return row && toVariant(row);
  }

  async updateModelLabels(id: string, labels: readonly string[]): Promise<void> {
    await this.db.updateTable('models').set({ labels: toJson(labels), updated_at: nowIso() }).where('id', '=', id).execute();
  }

  async updateVariantMetrics(id: string, metrics: Record<string, unknown>): Promise<void> {
    await this.db.updateTable('variants').set({ metrics: toJson(metrics), updated_at: nowIso() }).where('id', '=', id).execute();
  }

  async updateVariantStatus(id: string, status: VariantStatus, reason: string | null): Promise<void> {
    await this.db
      .updateTable('variants')
      .set({ status, status_reason: reason, updated_at: nowIso() })
      .where('id', '=', id)
      .execute();
  }
}
