import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { PubSub } from 'type-graphql';
import { badInput, conflict, notFound, emptyCounts, defaultVariant, type RegistryService, type ModelRecord, type VariantRecord, type Serving } from '../../gateway/plugin-surface';
import type { RolloutPlanInput, RolloutStarter, StartRolloutInput } from '../../schema/rollouts';
import { judgeStep, type StepJudgement } from './rollout-decision';
import { evidenceOf, since, totalsOf, type PairTotals } from './rollout-evidence';
import type { RolloutMetrics } from './rollout-metrics';
import { completePlan, type PlanRequest } from './rollout-plan';
import { rolloutPolicy } from './rollout-policy';
import type { RolloutEventKind, RolloutRecord, RolloutStatus } from './rollout-record';
import type { RolloutChange, RolloutRepository } from './rollout-repository';

/** Subscription topic of rollout changes; the rollout id is the topic id. */
export const ROLLOUT_UPDATED_TOPIC = 'ROLLOUT_UPDATED';

/** The plan part of a GraphQL input, as the plan module takes it. */
export function planRequestOf(input: RolloutPlanInput): PlanRequest {
  const g = input.guardrails;
  return {
    steps: input.steps?.map((s) => ({ trafficPercent: s.trafficPercent, minRequests: s.minRequests, minDurationSeconds: s.minDuration, maxDurationSeconds: s.maxDuration ?? null })) ?? null,
    guardrails: g
      ? Object.fromEntries(Object.entries({ ...g }).filter(([, v]) => v !== undefined))
      : null,
    shadowFirst: input.shadowFirst ?? null,
    shadowPercent: input.shadowPercent ?? null,
    requireFeedback: input.requireFeedback ?? null,
  };
}

/** How a person's action changes a rollout: from which states, to which, logged as what. */
const ACTIONS = {
  pause: { from: ['running'], to: 'paused', kind: 'paused' },
  resume: { from: ['paused'], to: 'running', kind: 'resumed' },
  abort: { from: ['running', 'paused'], to: 'aborted', kind: 'aborted' },
  promote: { from: ['running', 'paused'], to: 'promoted', kind: 'promoted' },
} as const satisfies Record<string, { from: readonly RolloutStatus[]; to: RolloutStatus; kind: RolloutEventKind }>;

export type RolloutAction = keyof typeof ACTIONS;

/** Tries of a person's action against the controller's concurrent writes before CONFLICT. */
const ACTION_ATTEMPTS = 5;

/**
 * The rules of rollouts: starting one (validated, nothing written when refused), people's
 * actions, the controller's decisions, and writing the traffic policy each state wants.
 */
export class RolloutService implements RolloutStarter {
  constructor(
    private readonly repository: RolloutRepository,
    private readonly registry: RegistryService,
    private readonly serving: Serving,
    private readonly pubSub: PubSub,
    private readonly metrics: RolloutMetrics,
    private readonly logger: Logger,
  ) {}

  checkPlan(plan: RolloutPlanInput): void {
    completePlan(planRequestOf(plan));
  }

  async startRollout(input: StartRolloutInput, actor: string): Promise<string> {
    return (await this.start(input, actor)).id;
  }

  async start(input: StartRolloutInput, actor: string): Promise<RolloutRecord> {
    const plan = completePlan(planRequestOf(input));
    const model = await this.registry.getModel(input.model);
    const state = await this.serving.catalog.read(model.name);
    const candidate = await this.variant(model, input.candidate, 'candidate');
    const baseline = input.baseline ? await this.variant(model, input.baseline, 'baseline') : defaultVariant(state);
    if (!baseline) throw badInput(`model ${model.name} routes to no variant; name the baseline`);
    if (baseline.status !== 'ready') throw badInput(`baseline variant ${baseline.tag} is ${baseline.status}; only a ready variant can be the baseline`);
    if (baseline.id === candidate.id) throw badInput(`the candidate ${candidate.tag} is the baseline; roll out a different variant`);
    const live = await this.repository.list({ modelId: model.id, limit: 1000 });
    if (live.some((r) => r.status === 'running' || r.status === 'paused')) throw conflict(`model ${model.name} already has a running or paused rollout; abort or finish it first`);

    const now = new Date();
    const id = randomUUID();
    const record: RolloutRecord = {
      id, modelId: model.id, candidateVariantId: candidate.id, baselineVariantId: baseline.id, plan, status: 'running',
      stepIndex: 0, stepStartedAt: now, stepBase: { candidate: emptyCounts(), baseline: emptyCounts() }, looks: 0, lastLookSamples: 0,
      version: 1, appliedVersion: 0, reason: null, createdBy: actor, createdAt: now, updatedAt: now, finishedAt: null,
    };
    record.stepBase = await this.totals(record);
    const first = plan.steps[0];
    await this.repository.insert(
      record,
      { kind: 'started', stepIndex: 0, trafficPercent: first.trafficPercent, actor, reason: `rollout of ${candidate.tag} against ${baseline.tag} started at ${first.trafficPercent} %`, figures: [] },
      { actor, action: 'rollout.started', subjectType: 'model', subjectId: model.id, details: { rollout: id, candidate: candidate.tag, baseline: baseline.tag, plan } },
    );
    this.logger.info({ rollout: id, model: model.name, candidate: candidate.tag, baseline: baseline.tag }, 'rollout started');
    return this.applyPolicy(record);
  }

  async act(id: string, action: RolloutAction, actor: string): Promise<RolloutRecord> {
    const rule = ACTIONS[action];
    for (let attempt = 0; attempt < ACTION_ATTEMPTS; attempt++) {
      const current = await this.get(id);
      if (!(rule.from as readonly RolloutStatus[]).includes(current.status)) {
        throw conflict(`rollout ${id} is ${current.status}; only a ${rule.from.join(' or ')} rollout can be ${rule.kind}`);
      }
      const step = current.plan.steps[current.stepIndex];
      const changed = await this.repository.transition(
        id,
        current.version,
        { status: rule.to, reason: `${rule.kind} by ${actor}` },
        { kind: rule.kind, stepIndex: current.stepIndex, trafficPercent: step.trafficPercent, actor, reason: `${rule.kind} by ${actor}`, figures: [] },
        { actor, action: `rollout.${rule.kind}`, subjectType: 'model', subjectId: current.modelId, details: { rollout: id, step: current.stepIndex + 1, trafficPercent: step.trafficPercent } },
      );
      if (changed) return this.applyPolicy(changed);
    }
    throw conflict(`rollout ${id} kept changing while it was being ${rule.kind}; try again`);
  }

  async get(id: string): Promise<RolloutRecord> {
    const record = await this.repository.find(id);
    if (!record) throw notFound(`no rollout with id ${id}`);
    return record;
  }

  async find(id: string): Promise<RolloutRecord | undefined> {
    return this.repository.find(id);
  }

  async list(modelName: string | undefined, status: RolloutStatus | undefined): Promise<RolloutRecord[]> {
    const modelId = modelName === undefined ? undefined : (await this.registry.getModel(modelName)).id;
    return this.repository.list({ modelId, status });
  }

  events(id: string) {
    return this.repository.events(id);
  }

  /**
   * One controller pass over a rollout whose lease this replica holds: writes the traffic policy
   * its state wants if that is not done yet (or, taking the rollout over, again), then judges
   * the running step.
   */
  async control(rollout: RolloutRecord, takingOver = false): Promise<void> {
    let current = rollout;
    // A controller taking a rollout over writes its traffic again: the one before may have
    // stopped between writing a new step's traffic and recording the step.
    if (takingOver || current.appliedVersion !== current.version) current = await this.applyPolicy(current);
    if (current.status !== 'running') return;
    const model = await this.registry.getModelById(current.modelId);
    const totals = await this.totals(current);
    const evidence = evidenceOf(since(totals, current.stepBase));
    const elapsed = (Date.now() - current.stepStartedAt.getTime()) / 1000;
    const judgement = judgeStep(current.plan, current.stepIndex, evidence, elapsed, current, model.task === 'CLASSIFICATION');
    const candidate = await this.registry.getVariant(current.candidateVariantId);
    this.metrics.decided(model.name, candidate.tag, judgement.decision);
    if (judgement.decision === 'hold') {
      const { looks, lastLookSamples } = judgement.lookState;
      await this.repository.recordHold(current.id, current.version, looks, lastLookSamples, judgement.reason);
      return;
    }
    await this.decide(current, model, judgement, totals);
  }

  private async decide(rollout: RolloutRecord, model: ModelRecord, judgement: StepJudgement, totals: PairTotals): Promise<void> {
    const actor = `rollout-controller:${rollout.id}`;
    const step = rollout.plan.steps[rollout.stepIndex];
    const looks = { looks: judgement.lookState.looks, lastLookSamples: judgement.lookState.lastLookSamples };
    let change: RolloutChange;
    let kind: RolloutEventKind;
    if (judgement.decision === 'rollback') {
      change = { status: 'rolled_back', reason: judgement.reason, ...looks };
      kind = 'rolled_back';
    } else if (judgement.decision === 'promote') {
      change = { status: 'promoted', reason: judgement.reason, ...looks };
      kind = 'promoted';
    } else {
      // A new step judges only its own traffic, from the totals read now, and starts its looks afresh.
      change = { stepIndex: rollout.stepIndex + 1, stepStartedAt: new Date(), stepBase: totals, looks: judgement.lookState.looks, lastLookSamples: 0 };
      kind = 'advanced';
    }
    const nextPercent = change.stepIndex !== undefined ? rollout.plan.steps[change.stepIndex].trafficPercent : step.trafficPercent;
    // Traffic first (a rollback reaches the baseline at once, and whoever reads the new state
    // finds its traffic in place), then the state, compare-and-set on the version judged.
    await this.writePolicy({ ...rollout, ...change });
    const changed = await this.repository.transition(
      rollout.id,
      rollout.version,
      change,
      { kind, stepIndex: change.stepIndex ?? rollout.stepIndex, trafficPercent: nextPercent, actor, reason: judgement.reason, figures: judgement.figures },
      { actor, action: `rollout.${kind}`, subjectType: 'model', subjectId: model.id, details: { rollout: rollout.id, step: rollout.stepIndex + 1, trafficPercent: step.trafficPercent, reason: judgement.reason, figures: judgement.figures } },
    );
    if (!changed) {
      // Someone paused or aborted it meanwhile: their change stands, and so must its traffic.
      await this.applyPolicy(await this.get(rollout.id));
      return;
    }
    const log = judgement.decision === 'rollback' ? this.logger.warn.bind(this.logger) : this.logger.info.bind(this.logger);
    log({ rollout: rollout.id, model: model.name, decision: judgement.decision }, judgement.reason);
    await this.applied(changed);
  }

  /** Writes the traffic policy the rollout's state wants, marks it written and tells subscribers. */
  async applyPolicy(rollout: RolloutRecord): Promise<RolloutRecord> {
    await this.writePolicy(rollout);
    return this.applied(rollout);
  }

  private async writePolicy(rollout: RolloutRecord): Promise<void> {
    const model = await this.registry.getModelById(rollout.modelId);
    await this.serving.trafficPolicies.update(model.name, ({ policy }) => rolloutPolicy(rollout, policy), { actor: `rollout:${rollout.id}` });
  }

  private async applied(rollout: RolloutRecord): Promise<RolloutRecord> {
    await this.repository.markApplied(rollout.id, rollout.version);
    const applied = { ...rollout, appliedVersion: rollout.version };
    await this.pubSub.publish(ROLLOUT_UPDATED_TOPIC, rollout.id, applied);
    return applied;
  }

  /** The pair's running totals since the rollout began, this replica's latest counts included. */
  private async totals(rollout: RolloutRecord): Promise<PairTotals> {
    await this.serving.flushRollups();
    const rows = await this.serving.rollups.query(rollout.modelId, rollout.createdAt);
    return totalsOf(rows, rollout.candidateVariantId, rollout.baselineVariantId);
  }

  private async variant(model: ModelRecord, ref: string, role: string): Promise<VariantRecord> {
    const variant = await this.registry.resolveVariant(model, ref);
    if (!variant) throw badInput(`model ${model.name} has no variant "${ref}" (the ${role})`);
    if (variant.status !== 'ready') throw badInput(`${role} variant ${variant.tag} is ${variant.status}; only a ready variant can be rolled out`);
    return variant;
  }
}
