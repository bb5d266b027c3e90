import { useCallback, useEffect, useState } from 'react';
import { graphql } from './api';

/** Runs a query now and every `refreshMs` (if given); the latest answer or error. */
export function useQuery<T>(query: string, variables: Record<string, unknown>, refreshMs?: number): { data: T | null; error: string | null; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = JSON.stringify(variables);
  const load = useCallback(() => {
    graphql<T>(query, JSON.parse(key) as Record<string, unknown>).then(
      (answer) => {
        setData(answer);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  }, [query, key]);
  useEffect(() => {
    load();
    if (!refreshMs) return;
    const timer = setInterval(load, refreshMs);
    return () => clearInterval(timer);
  }, [load, refreshMs]);
  return { data, error, reload: load };
}
