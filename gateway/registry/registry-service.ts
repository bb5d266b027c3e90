import type { Logger } from 'pino';
import { validatePreprocessing, type Preprocessing } from '../../workers/common/preprocessing';
import { isSha256, type ArtifactStore } from '../../workers/common/artifacts/artifact-store';
import type { ModelCard } from '../../workers/common/model-card';
import type { AuditLog } from '../audit/audit-log';
import { badInput, conflict, GatewayError, invalidModel, notFound } from '../errors';
import type { EventBus } from '../events/event-bus';
import type { LocalFiles } from '../files/local-files';
import { checkSignatureFitsTask, readSignature } from './model-signature';
import { findRegistrationCard } from './registration-card';
import { checkOnnxLimits, type OnnxLimits } from './onnx-limits';
import type { RegistryRepository } from './registry-repository';
import type { Actor, ModelRecord, ModelTask, NewVariant, VariantRecord, VariantStatus } from './registry-types';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const VARIANT_TAG = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Preprocessing as a registration gives it: each field may come from the model card instead. */
export type PreprocessingRequest = Partial<Preprocessing>;

/**
 * A registration. Task, description, labels and preprocessing may come from a model card (one
 * uploaded as `cardArtifactSha256`, or `<model>.card.json` beside `localPath`); what the request
 * gives wins over the card, field by field.
 */
export interface RegisterModelRequest {
  name: string;
  task?: ModelTask;
  description?: string;
  labels?: string[];
  preprocessing?: PreprocessingRequest;
  /** An artifact uploaded earlier through the artifact endpoint. */
  artifactSha256?: string;
  /** A file on the gateway's own disk (admins only; convenient for demos and scripts). */
  localPath?: string;
  /** A model card uploaded through the artifact endpoint. */
  cardArtifactSha256?: string;
}

/** A new variant from an uploaded artifact; its signature and size are read from the file. */
export type AddVariantRequest = Omit<NewVariant, 'signature' | 'artifactSize' | 'status'> & { status?: VariantStatus };

/**
 * The registry's rules: what a valid model is, how variants come and go, and that every change
 * is audited and announced. Resolvers and plugins go through here, never to the tables.
 */
export class RegistryService {
  constructor(
    private readonly repository: RegistryRepository,
    private readonly artifacts: ArtifactStore,
    private readonly audit: AuditLog,
    private readonly events: EventBus,
    private readonly logger: Logger,
    private readonly localFiles: LocalFiles,
    private readonly onnxLimits: OnnxLimits,
  ) {}

  async registerModel(request: RegisterModelRequest, actor: Actor): Promise<{ model: ModelRecord; variant: VariantRecord }> {
    if (!MODEL_NAME.test(request.name)) {
      throw badInput(`model name "${request.name}" must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    }
    if ((request.artifactSha256 === undefined) === (request.localPath === undefined)) {
      throw badInput('give exactly one of artifactSha256 (after uploading to /v1/artifacts) or localPath');
    }
    if (request.labels) checkLabels(request.labels);
    if (await this.repository.findModelByName(request.name)) {
      throw conflict(`a model named "${request.name}" already exists`);
    }
    const found = await findRegistrationCard(request, {
      localFiles: this.localFiles,
      readArtifact: (sha256, what, maxBytes) => this.readUploadedArtifact(sha256, what, maxBytes),
    });
    const card = found?.card;
    const task = request.task ?? card?.task;
    if (!task) throw badInput('give the task (CLASSIFICATION or RETRIEVAL) or a model card that names it');
    const labels = request.labels ?? card?.labels ?? [];
    if (request.labels === undefined) checkLabels(labels, found?.source);

    const bytes = request.localPath !== undefined
      ? await this.localFiles.read(request.localPath, 'localPath')
      : await this.readUploadedArtifact(request.artifactSha256 as string, 'artifactSha256');
    checkOnnxLimits(bytes, this.onnxLimits);
    const signature = await readSignature(bytes);
    const preprocessing = this.completePreprocessing(request.preprocessing, card, signature.inputs[0]?.name);
    if (card?.output !== undefined && signature.outputs.length === 1 && card.output !== signature.outputs[0].name) {
      throw invalidModel(`the model card (${found?.source}) describes output "${card.output}", but the model's output is "${signature.outputs[0].name}"; is it the card of another model?`);
    }
    checkSignatureFitsTask(signature, task, preprocessing, labels.length);
    const classCount = signature.outputs[0].shape[1];
    const finalLabels = task === 'CLASSIFICATION' && labels.length === 0
      ? Array.from({ length: classCount }, (_, i) => `class_${i}`)
      : labels;

    const stored = await this.artifacts.put(bytes);
    const created = await this.repository
      .transaction(async (tx) => {
        await tx.recordModelArtifact(stored.sha256, stored.size);
        const model = await tx.insertModel({
          name: request.name,
          task,
          description: request.description ?? (typeof card?.description === 'string' ? card.description : ''),
          labels: finalLabels,
          preprocessing,
        });
        const variant = await tx.insertVariant({
          modelId: model.id,
          parentVariantId: null,
          tag: 'fp32',
          precision: 'FP32',
          method: 'upload',
          config: {},
          metrics: {},
          signature,
          artifactSha256: stored.sha256,
          artifactSize: stored.size,
          status: 'ready',
        });
        await this.audit.record(
          {
            actor: actor.name,
            action: 'model.register',
            subjectType: 'model',
            subjectId: model.id,
            details: { name: model.name, task: model.task, variantId: variant.id, sha256: stored.sha256, card: found?.source ?? null },
          },
          tx.executor,
        );
        return { model, variant };
      })
      .catch((error: unknown) => {
        // Two registrations racing past the name check meet the unique index here.
        if (/unique|duplicate/i.test(String((error as Error)?.message))) {
          throw conflict(`a model named "${request.name}" already exists`);
        }
        throw error;
      });
    this.logger.info({ model: created.model.name, variant: created.variant.id, actor: actor.name }, 'model registered');
    this.events.emit('model.registered', created);
    return created;
  }

  /**
   * Replaces a model's labels (class names in output order). A classifier's list must have one
   * name per class of every variant whose class count is fixed. The change is audited (the
   * entries that changed) and announced, so serving answers with the new names at once.
   */
  async setModelLabels(modelName: string, labels: readonly string[], actor: Actor): Promise<ModelRecord> {
    const model = await this.getModel(modelName);
    checkLabels(labels);
    if (model.task === 'CLASSIFICATION') {
      const variants = (await this.repository.listVariants(model.id)).filter((v) => v.status !== 'retired');
      for (const variant of variants) {
        const classes = variant.signature.outputs[0]?.shape[1];
        if (classes !== undefined && classes !== -1 && classes !== labels.length) {
          throw badInput(`model ${model.name} has ${classes} classes (output "${variant.signature.outputs[0].name}" of variant ${variant.tag}); give ${classes} labels, got ${labels.length}`);
        }
      }
    }
    if (labels.length === model.labels.length && labels.every((l, i) => l === model.labels[i])) return model;
    const changed = Array.from({ length: Math.max(labels.length, model.labels.length) }, (_, index) => ({
      index,
      from: model.labels[index] ?? null,
      to: labels[index] ?? null,
    })).filter((entry) => entry.from !== entry.to);
    await this.repository.transaction(async (tx) => {
      await tx.updateModelLabels(model.id, labels);
      await this.audit.record(
        { actor: actor.name, action: 'model.labels', subjectType: 'model', subjectId: model.id, details: { name: model.name, count: labels.length, changed } },
        tx.executor,
      );
    });
    const updated = await this.getModel(modelName);
    this.logger.info({ model: model.name, changed: changed.length, actor: actor.name }, 'model labels changed');
    this.events.emit('model.updated', { model: updated });
    return updated;
  }

  /** Adds a variant (for example a quantized one) beside a model's existing variants. */
  async addVariant(request: AddVariantRequest, actor: Actor): Promise<VariantRecord> {
    if (!VARIANT_TAG.test(request.tag)) throw badInput(`variant tag "${request.tag}" must be 1-64 letters, digits, '.', '_' or '-'`);
    const model = await this.repository.findModelById(request.modelId);
    if (!model) throw notFound(`no model with id ${request.modelId}`);
    if (request.parentVariantId !== null) {
      const parent = await this.repository.findVariant(request.parentVariantId);
      if (!parent || parent.modelId !== model.id) throw notFound(`model ${model.name} has no variant ${request.parentVariantId}`);
    }
    if (await this.repository.findVariantByTag(model.id, request.tag)) {
      throw conflict(`model ${model.name} already has a variant tagged "${request.tag}"`);
    }
    const bytes = await this.readUploadedArtifact(request.artifactSha256, 'artifactSha256');
    checkOnnxLimits(bytes, this.onnxLimits);
    const signature = await readSignature(bytes);
    checkSignatureFitsTask(signature, model.task, model.preprocessing, model.labels.length);
    const newVariant: NewVariant = {
      modelId: model.id,
      parentVariantId: request.parentVariantId,
      tag: request.tag,
      precision: request.precision,
      method: request.method,
      config: request.config,
      metrics: request.metrics,
      signature,
      artifactSha256: request.artifactSha256,
      artifactSize: bytes.length,
      status: request.status ?? 'ready',
    };
    const variant = await this.repository.transaction(async (tx) => {
      await tx.recordModelArtifact(request.artifactSha256, bytes.length);
      const inserted = await tx.insertVariant(newVariant);
      await this.audit.record(
        {
          actor: actor.name,
          action: 'variant.add',
          subjectType: 'variant',
          subjectId: inserted.id,
          details: { model: model.name, tag: inserted.tag, method: inserted.method, sha256: inserted.artifactSha256 },
        },
        tx.executor,
      );
      return inserted;
    });
    this.events.emit('variant.added', { model, variant });
    return variant;
  }

  listModels(): Promise<ModelRecord[]> {
    return this.repository.listModels();
  }

  async getModel(name: string): Promise<ModelRecord> {
    const model = await this.repository.findModelByName(name);
    if (!model) throw notFound(`no model named "${name}"`);
    return model;
  }

  findModel(name: string): Promise<ModelRecord | undefined> {
    return this.repository.findModelByName(name);
  }

  async getModelById(id: string): Promise<ModelRecord> {
    const model = await this.repository.findModelById(id);
    if (!model) throw notFound(`no model with id ${id}`);
    return model;
  }

  listVariants(modelId: string): Promise<VariantRecord[]> {
    return this.repository.listVariants(modelId);
  }

  /** Batch reads for request-scoped loaders: one statement whatever the number of ids. */
  listVariantsByModelIds(modelIds: readonly string[]): Promise<VariantRecord[]> {
    return this.repository.listVariantsByModelIds(modelIds);
  }

  getModelsByIds(ids: readonly string[]): Promise<ModelRecord[]> {
    return this.repository.findModelsByIds(ids);
  }

  getVariantsByIds(ids: readonly string[]): Promise<VariantRecord[]> {
    return this.repository.findVariantsByIds(ids);
  }

  listVariantsByStatus(status: VariantStatus): Promise<VariantRecord[]> {
    return this.repository.listVariantsByStatus(status);
  }

  findVariant(id: string): Promise<VariantRecord | undefined> {
    return this.repository.findVariant(id);
  }

  async getVariant(id: string): Promise<VariantRecord> {
    const variant = await this.repository.findVariant(id);
    if (!variant) throw notFound(`no variant with id ${id}`);
    return variant;
  }

  /** A variant by id or, within the model, by tag: the data plane's version path takes either. */
  async resolveVariant(model: ModelRecord, idOrTag: string): Promise<VariantRecord | undefined> {
    const byTag = await this.repository.findVariantByTag(model.id, idOrTag);
    if (byTag) return byTag;
    const byId = await this.repository.findVariant(idOrTag);
    return byId?.modelId === model.id ? byId : undefined;
  }

  async retireVariant(id: string, actor: Actor): Promise<VariantRecord> {
    return this.setVariantStatus(id, 'retired', null, actor);
  }

  async setVariantStatus(id: string, status: VariantStatus, reason: string | null, actor: Actor): Promise<VariantRecord> {
    const variant = await this.getVariant(id);
    if (variant.status === status) return variant;
    if (variant.status === 'retired') {
      throw new GatewayError('CONFLICT', `variant ${id} is retired; a retired variant cannot become ${status}`);
    }
    await this.repository.transaction(async (tx) => {
      await tx.updateVariantStatus(id, status, reason);
      await this.audit.record(
        {
          actor: actor.name,
          action: `variant.${status}`,
          subjectType: 'variant',
          subjectId: id,
          details: { from: variant.status, to: status, reason },
        },
        tx.executor,
      );
    });
    const updated = await this.getVariant(id);
    this.events.emit('variant.status', { variant: updated, previous: variant.status });
    return updated;
  }

  /**
   * Replaces a variant's evaluation figures (a quantization job measuring the parent on its own
   * evaluation set, say); the audit entry keeps the figures replaced.
   */
  async recordVariantMetrics(id: string, metrics: Record<string, unknown>, actor: Actor): Promise<VariantRecord> {
    const variant = await this.getVariant(id);
    await this.repository.transaction(async (tx) => {
      await tx.updateVariantMetrics(id, metrics);
      await this.audit.record(
        { actor: actor.name, action: 'variant.metrics', subjectType: 'variant', subjectId: id, details: { from: variant.metrics, to: metrics } },
        tx.executor,
      );
    });
    return this.getVariant(id);
  }

  /** The request's preprocessing fields over the card's, then the defaults (the model's input, NCHW, mean 0, std 1). */
  private completePreprocessing(request: PreprocessingRequest | undefined, card: ModelCard | undefined, modelInputName: string | undefined): Preprocessing {
    const given = Object.fromEntries(Object.entries(request ?? {}).filter(([, value]) => value !== undefined && value !== null));
    const merged: Partial<Preprocessing> = { ...card?.preprocessing, ...given };
    const { channels, height, width } = merged;
    if (channels === undefined || height === undefined || width === undefined) {
      const missing = Object.entries({ height, width, channels }).filter(([, value]) => value === undefined).map(([key]) => key);
      throw badInput(
        `give preprocessing ${missing.join(', ')} (and mean, std), or a model card: upload it as cardArtifactSha256, or place <model>.card.json beside localPath`,
      );
    }
    try {
      return validatePreprocessing({
        inputName: merged.inputName ?? modelInputName ?? '',
        layout: merged.layout ?? 'NCHW',
        height,
        width,
        channels,
        mean: merged.mean ?? new Array(channels).fill(0),
        std: merged.std ?? new Array(channels).fill(1),
      });
    } catch (error) {
      throw badInput((error as Error).message);
    }
  }

  /** An uploaded artifact's bytes, refused past `maxBytes` (recorded size) before reading. */
  private async readUploadedArtifact(sha256: string, what: string, maxBytes?: number): Promise<Buffer> {
    if (!isSha256(sha256)) throw badInput(`${what} must be 64 lowercase hex digits, got "${sha256}"`);
    if (!(await this.artifacts.has(sha256))) {
      throw notFound(`no artifact with sha256 ${sha256}; upload the file to POST /v1/artifacts first`);
    }
    if (maxBytes !== undefined) {
      const recorded = await this.repository.findArtifact(sha256);
      if (recorded && recorded.size > maxBytes) throw badInput(`${what} ${sha256} is ${recorded.size} bytes, over the limit of ${maxBytes}`);
    }
    return this.artifacts.read(sha256);
  }
}

/** As many as RegisterModelInput accepts. */
const MAX_LABELS = 100_000;

/** Labels must name distinct classes; `source` names the card they came from. */
function checkLabels(labels: readonly string[], source?: string): void {
  const where = source ? ` (from ${source})` : '';
  if (labels.length > MAX_LABELS) throw badInput(`at most ${MAX_LABELS} labels, got ${labels.length}${where}`);
  if (labels.some((l) => l.trim() === '')) throw badInput(`labels must not be empty strings${where}`);
  if (new Set(labels).size !== labels.length) throw badInput(`labels must be distinct${where}`);
}
