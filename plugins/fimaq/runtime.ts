import type { PluginContext } from '../../gateway/plugins/plugin-api';
import type { FimaqConfig } from './fimaq-config';
import type { QuantizationService } from './quantization-service';

/** Subscription topic of job updates; the job id is the topic id. */
export const JOB_UPDATED_TOPIC = 'QUANTIZATION_JOB_UPDATED';

/** What the plugin builds on start, for its resolvers (constructed later with the same context). */
export interface FimaqRuntime {
  config: FimaqConfig;
  service: QuantizationService;
}

const runtimes = new WeakMap<PluginContext, FimaqRuntime>();

export function setFimaqRuntime(context: PluginContext, runtime: FimaqRuntime): void {
  runtimes.set(context, runtime);
}

export function fimaqRuntimeOf(context: PluginContext): FimaqRuntime {
  const runtime = runtimes.get(context);
  if (!runtime) throw new Error('the fimaq plugin was not started with this context');
  return runtime;
}
