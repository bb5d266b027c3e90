import type { Logger } from 'pino';
import type { RolloutRepository } from './rollout-repository';
import type { RolloutService } from './rollout-service';

/**
 * Runs each interval on every replica; a replica acts on a rollout only while it holds that
 * rollout's lease (a compare-and-set on the row), so exactly one controller decides per rollout.
 * The lease outlives a few intervals, so a replica that dies hands over after it expires; one
 * that stops gives its leases back at once.
 */
export class RolloutController {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;
  /** Rollouts this controller held the lease of at its last pass. */
  private leading = new Set<string>();

  constructor(
    private readonly service: RolloutService,
    private readonly repository: RolloutRepository,
    private readonly instanceId: string,
    private readonly options: { intervalMs: number; leaseMs: number },
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.options.intervalMs);
    this.timer.unref();
  }

  /** One pass over the rollouts with work; a pass still running is awaited instead of overlapped. */
  runOnce(): Promise<void> {
    this.pass ??= this.passOverRollouts().finally(() => (this.pass = undefined));
    return this.pass;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.pass;
    await this.repository.releaseLeases(this.instanceId);
  }

  private async passOverRollouts(): Promise<void> {
    try {
      const led = new Set<string>();
      for (const rollout of await this.repository.listWork()) {
        if (!(await this.repository.acquireLease(rollout.id, this.instanceId, this.options.leaseMs))) continue;
        led.add(rollout.id);
        const takingOver = !this.leading.has(rollout.id);
        await this.service.control(rollout, takingOver).catch((error: unknown) => this.logger.error({ err: error, rollout: rollout.id }, 'rollout controller pass failed'));
      }
      this.leading = led;
    } catch (error) {
      this.logger.error({ err: error }, 'listing rollouts failed');
    }
  }
}
