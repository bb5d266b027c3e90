import { EventEmitter } from 'node:events';
import type { PubSub } from 'type-graphql';

/** One subscriber's buffered stream of payloads; ends when the client unsubscribes. */
function subscription<T>(emitter: EventEmitter, topic: string): AsyncIterableIterator<T> {
  const buffered: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | undefined;
  let done = false;
  const listener = (payload: T) => {
    if (waiting) {
      const resolve = waiting;
      waiting = undefined;
      resolve({ value: payload, done: false });
    } else {
      buffered.push(payload);
    }
  };
  emitter.on(topic, listener);
  const finish = (): Promise<IteratorResult<T>> => {
    done = true;
    emitter.off(topic, listener);
    buffered.length = 0;
    waiting?.({ value: undefined, done: true });
    waiting = undefined;
    return Promise.resolve({ value: undefined, done: true });
  };
  return {
    next: () => {
      if (buffered.length) return Promise.resolve({ value: buffered.shift() as T, done: false });
      if (done) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return: finish,
    throw: (error: unknown) => {
      void finish();
      return Promise.reject(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * GraphQL subscriptions within one gateway process. Follows type-graphql's convention: a topic
 * with a dynamic id (`@Subscription({ topics, topicId })`) is published as
 * `publish(topic, id, payload)` and subscribed as `subscribe(topic, id)`.
 */
export class InProcessPubSub implements PubSub {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per open subscription; many clients may watch the same topic.
    this.emitter.setMaxListeners(0);
  }

  publish(routingKey: string, ...args: unknown[]): void {
    if (args.length >= 2) this.emitter.emit(`${routingKey}:${String(args[0])}`, args[1]);
    else this.emitter.emit(routingKey, args[0]);
  }

  subscribe(routingKey: string, dynamicId?: unknown): AsyncIterable<unknown> {
    return subscription(this.emitter, dynamicId === undefined ? routingKey : `${routingKey}:${String(dynamicId)}`);
  }
}
