import { EventEmitter } from 'node:events';
import type { ModelRecord, VariantRecord } from '../registry/registry-types';

/**
 * In-process notifications between the gateway's parts and its plugins: the registry announces
 * changes, the data plane loads and unloads sessions, plugins react. Listeners must not throw;
 * a throwing listener is logged by the emitter's owner and does not stop the others.
 */
export interface GatewayEvents {
  'model.registered': { model: ModelRecord; variant: VariantRecord };
  /** A model's own fields changed (its labels); its variants did not. */
  'model.updated': { model: ModelRecord };
  'variant.added': { model: ModelRecord; variant: VariantRecord };
  'variant.status': { variant: VariantRecord; previous: VariantRecord['status'] };
}

export type GatewayEventName = keyof GatewayEvents;
type Listener<E extends GatewayEventName> = (payload: GatewayEvents[E]) => void;

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor(private readonly onListenerError: (event: string, error: unknown) => void = () => undefined) {
    this.emitter.setMaxListeners(100);
  }

  on<E extends GatewayEventName>(event: E, listener: Listener<E>): () => void {
    const safe = (payload: GatewayEvents[E]) => {
      try {
        listener(payload);
      } catch (error) {
        this.onListenerError(event, error);
      }
    };
    this.emitter.on(event, safe);
    return () => this.emitter.off(event, safe);
  }

  emit<E extends GatewayEventName>(event: E, payload: GatewayEvents[E]): void {
    this.emitter.emit(event, payload);
  }
}
