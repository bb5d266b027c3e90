import { useEffect, useRef, useState } from 'react';
import { graphql, subscribe } from './api';

/**
 * A list of records with ids, loaded by `query` (re-read every `refreshMs` for new ones) and kept
 * live through a subscription per unfinished record: each update replaces that record.
 */
export function useLiveList<T extends { id: string }>(options: {
  enabled: boolean;
  query: string;
  pick: (data: Record<string, unknown>) => T[];
  subscription: string;
  pickUpdate: (data: Record<string, unknown>) => T;
  finished: (record: T) => boolean;
  refreshMs: number;
}): { records: T[] | null; error: string | null } {
  const [records, setRecords] = useState<T[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const live = useRef(new Map<string, () => void>());
  const { enabled, query, pick, subscription, pickUpdate, finished, refreshMs } = options;

  useEffect(() => {
    if (!enabled) return;
    const subscriptions = live.current;
    const follow = (list: T[]) => {
      for (const record of list) {
        if (finished(record) || subscriptions.has(record.id)) continue;
        const stop = subscribe<Record<string, unknown>>(
          subscription,
          { id: record.id },
          (data) => {
            const next = pickUpdate(data);
            setRecords((current) => (current ?? []).map((r) => (r.id === next.id ? next : r)));
            if (finished(next)) {
              subscriptions.get(next.id)?.();
              subscriptions.delete(next.id);
            }
          },
          (e) => setError(e.message),
        );
        subscriptions.set(record.id, stop);
      }
    };
    const load = () =>
      graphql<Record<string, unknown>>(query).then(
        (data) => {
          const list = pick(data);
          setRecords(list);
          setError(null);
          follow(list);
        },
        (e: Error) => setError(e.message),
      );
    void load();
    const timer = setInterval(load, refreshMs);
    return () => {
      clearInterval(timer);
      for (const stop of subscriptions.values()) stop();
      subscriptions.clear();
    };
  }, [enabled, query, pick, subscription, pickUpdate, finished, refreshMs]);

  return { records, error };
}
