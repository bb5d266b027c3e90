import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { Logger } from 'pino';

/** Receives the key (a model id, a job id) of something another replica changed. */
export type ChangeListener = (key: string) => void;

/**
 * Tells the other gateway replicas that something they may hold in memory changed in the shared
 * database: a traffic policy, a model's variants, a gallery, a job. It carries only a topic and
 * a key; receivers re-read what they need. The replica that made a change has already applied it
 * itself, so listeners hear only the other replicas' changes.
 *
 * Delivery is best effort: a notification lost while a connection is down is made good by the
 * periodic refresh every cache keeps as a safety net.
 */
export interface ChangeFeed {
  publish(topic: string, key: string): void;
  /** Returns the function that unsubscribes. */
  subscribe(topic: string, listener: ChangeListener): () => void;
  close(): Promise<void>;
}

/** Listeners by topic, shared by the feeds. */
class Listeners {
  private readonly byTopic = new Map<string, Set<ChangeListener>>();

  constructor(private readonly logger: Logger) {}

  add(topic: string, listener: ChangeListener): () => void {
    const set = this.byTopic.get(topic) ?? new Set<ChangeListener>();
    this.byTopic.set(topic, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  deliver(topic: string, key: string): void {
    for (const listener of this.byTopic.get(topic) ?? []) {
      try {
        listener(key);
      } catch (error) {
        this.logger.warn({ err: error, topic, key }, 'change listener failed');
      }
    }
  }
}

/** The embedded default: one process, so there is no other replica to tell or to hear from. */
export class SingleProcessChangeFeed implements ChangeFeed {
  publish(): void {}

  subscribe(): () => void {
    return () => undefined;
  }

  async close(): Promise<void> {}
}

/** The PostgreSQL channel every replica listens on. */
export const CHANGE_CHANNEL = 'vit_gateway_changes';
/** Wait before listening again after the listening connection was lost. */
const RECONNECT_MS = 1000;

interface ChangeMessage {
  origin: string;
  topic: string;
  key: string;
}

function parseMessage(payload: string | undefined): ChangeMessage | undefined {
  try {
    const value = JSON.parse(payload ?? '') as Partial<ChangeMessage>;
    if (typeof value.origin === 'string' && typeof value.topic === 'string' && typeof value.key === 'string') return value as ChangeMessage;
  } catch {
    // Not ours: another program may NOTIFY on the same channel.
  }
  return undefined;
}

/**
 * Replicas sharing one PostgreSQL database tell each other through LISTEN/NOTIFY: no extra
 * server, and a notification sent after a commit is never seen before the data it announces.
 * One dedicated connection listens (and reconnects when lost); notifications are sent on it too.
 */
export class PostgresChangeFeed implements ChangeFeed {
  private readonly origin = randomUUID();
  private readonly listeners: Listeners;
  private client: Client | undefined;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly databaseUrl: string,
    private readonly logger: Logger,
  ) {
    this.listeners = new Listeners(logger);
  }

  /** Starts listening; resolves once the LISTEN is in place, so changes published after it are heard. */
  static async open(databaseUrl: string, logger: Logger): Promise<PostgresChangeFeed> {
    const feed = new PostgresChangeFeed(databaseUrl, logger);
    await feed.listen();
    return feed;
  }

  publish(topic: string, key: string): void {
    const client = this.client;
    if (!client) {
      this.logger.warn({ topic, key }, 'change not announced to other replicas: not connected; they catch up at their next refresh');
      return;
    }
    const payload = JSON.stringify({ origin: this.origin, topic, key } satisfies ChangeMessage);
    client.query('select pg_notify($1, $2)', [CHANGE_CHANNEL, payload]).catch((error: unknown) => {
      this.logger.warn({ err: error, topic, key }, 'change not announced to other replicas; they catch up at their next refresh');
    });
  }

  subscribe(topic: string, listener: ChangeListener): () => void {
    return this.listeners.add(topic, listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async listen(): Promise<void> {
    const client = new Client({ connectionString: this.databaseUrl });
    client.on('notification', (message) => {
      const change = message.channel === CHANGE_CHANNEL ? parseMessage(message.payload) : undefined;
      if (change && change.origin !== this.origin) this.listeners.deliver(change.topic, change.key);
    });
    const lost = (error?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      if (error) this.logger.warn({ err: error }, 'change feed connection lost; listening again shortly');
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    await client.query(`listen ${CHANGE_CHANNEL}`);
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.reconnectTimer = setTimeout(() => {
      this.listen().catch((error: unknown) => {
        this.logger.warn({ err: error }, 'change feed could not listen; trying again');
        this.scheduleReconnect();
      });
    }, RECONNECT_MS);
    this.reconnectTimer.unref();
  }
}

/** PostgreSQL's LISTEN/NOTIFY when replicas share a PostgreSQL database; nothing to do for the embedded SQLite file. */
export async function openChangeFeed(databaseUrl: string | undefined, logger: Logger): Promise<ChangeFeed> {
  return databaseUrl ? PostgresChangeFeed.open(databaseUrl, logger) : new SingleProcessChangeFeed();
}
