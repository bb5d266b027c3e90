import { Counter, Gauge, type Registry } from 'prom-client';
import type { Decision } from './rollout-decision';

/** What the exported gauges show of each live rollout, read from the database at each scrape. */
export interface LiveRollout {
  rollout: string;
  model: string;
  candidate: string;
  /** 1-based step number and the candidate's share of traffic in it. */
  step: number;
  trafficPercent: number;
  paused: boolean;
}

/**
 * Rollout figures at the gateway's one /metrics (the serving registry): the step and traffic
 * share of every live rollout, as stored (so every replica shows the same), and the decisions
 * this replica's controller took.
 */
export class RolloutMetrics {
  private readonly decisions: Counter<'model' | 'candidate' | 'decision'>;

  constructor(registry: Registry, live: () => Promise<LiveRollout[]>) {
    const registers = [registry];
    this.decisions = new Counter({ name: 'gateway_rollout_decisions_total', help: 'Controller decisions per rollout evaluation: hold, advance, promote, rollback.', labelNames: ['model', 'candidate', 'decision'], registers });
    const labels = ['model', 'candidate', 'rollout'] as const;
    const percent = new Gauge({ name: 'gateway_rollout_traffic_percent', help: 'Share of primary traffic the candidate of a live rollout answers.', labelNames: labels, registers });
    const paused = new Gauge({ name: 'gateway_rollout_paused', help: '1 while a live rollout is paused.', labelNames: labels, registers });
    new Gauge({
      name: 'gateway_rollout_step',
      help: 'Current step (1-based) of each live rollout.',
      labelNames: labels,
      registers,
      async collect() {
        const rollouts = await live();
        for (const gauge of [this, percent, paused]) gauge.reset();
        for (const r of rollouts) {
          const at = { model: r.model, candidate: r.candidate, rollout: r.rollout };
          this.set(at, r.step);
          percent.set(at, r.trafficPercent);
          paused.set(at, r.paused ? 1 : 0);
        }
      },
    });
  }

  decided(model: string, candidate: string, decision: Decision): void {
    this.decisions.inc({ model, candidate, decision });
  }
}
