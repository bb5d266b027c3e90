import { useEffect, useState } from 'react';
import { rootFields } from '../api';
import { number } from '../format';
import { useLiveList } from '../useLiveList';

interface Figure {
  guardrail: string;
  verdict: string;
  estimate: number | null;
  lower: number | null;
  upper: number | null;
  threshold: number;
  samples: number;
}
interface Rollout {
  id: string;
  model: string;
  candidate: string;
  baseline: string;
  status: string;
  step: number;
  trafficPercent: number;
  reason: string | null;
  steps: Array<{ trafficPercent: number; minRequests: number; minDuration: number }>;
  events: Array<{ seq: number; at: string; kind: string; step: number; trafficPercent: number; actor: string; reason: string; figures: Figure[] }>;
}

const FIELDS = `id model candidate baseline status step trafficPercent reason steps { trafficPercent minRequests minDuration }
  events { seq at kind step trafficPercent actor reason figures { guardrail verdict estimate lower upper threshold samples } }`;
const ROLLOUTS = `{ rollouts { ${FIELDS} } }`;
const ROLLOUT_UPDATED = `subscription($id: ID!) { rolloutUpdated(id: $id) { ${FIELDS} } }`;
const LIVE = new Set(['running', 'paused']);

const pick = (data: Record<string, unknown>) => data.rollouts as Rollout[];
const pickUpdate = (data: Record<string, unknown>) => data.rolloutUpdated as Rollout;
const finished = (rollout: Rollout) => !LIVE.has(rollout.status);

function Guardrails({ figures }: { figures: Figure[] }) {
  if (figures.length === 0) return <p className="muted">No guardrail decision yet.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th>guardrail</th>
          <th>verdict</th>
          <th>estimate [interval]</th>
          <th>threshold</th>
          <th>samples</th>
        </tr>
      </thead>
      <tbody>
        {figures.map((f) => (
          <tr key={f.guardrail}>
            <td>{f.guardrail}</td>
            <td className={`verdict-${f.verdict}`}>{f.verdict}</td>
            <td>
              {f.estimate === null ? '—' : `${number(f.estimate, 4)} [${f.lower === null ? '−∞' : number(f.lower, 4)}, ${f.upper === null ? '∞' : number(f.upper, 4)}]`}
            </td>
            <td>{number(f.threshold, 4)}</td>
            <td>{f.samples}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Canary rollouts: the step timeline and the guardrails as last judged, live while running. */
export function RolloutsPage() {
  const [available, setAvailable] = useState<boolean | null>(null);
  useEffect(() => {
    rootFields().then((f) => setAvailable(f.query.has('rollouts') && f.subscription.has('rolloutUpdated')), () => setAvailable(false));
  }, []);
  const { records, error } = useLiveList<Rollout>({ enabled: available === true, query: ROLLOUTS, pick, subscription: ROLLOUT_UPDATED, pickUpdate, finished, refreshMs: 10000 });

  if (available === null) return <p>Loading…</p>;
  if (available === false) return <p data-testid="no-rollouts">No rollouts plugin: this gateway serves no rollouts(model, status) query.</p>;
  if (error) return <p className="error">{error}</p>;
  if (!records) return <p>Loading…</p>;
  return (
    <>
      <h1>Rollouts</h1>
      {records.length === 0 && <p>No rollouts yet.</p>}
      {records.map((r) => {
        const decisions = r.events.filter((e) => e.figures.length > 0);
        return (
          <section key={r.id} className="card" data-testid={`rollout-${r.id}`}>
            <h2>
              {r.model}: {r.candidate} against {r.baseline} <span className={`status-${r.status}`}>{r.status.replace('_', ' ')}</span>
            </h2>
            <ol className="timeline">
              {r.steps.map((s, i) => (
                <li key={i} className={i + 1 < r.step ? 'done' : i + 1 === r.step ? 'current' : undefined}>
                  step {i + 1}: {s.trafficPercent} %
                </li>
              ))}
            </ol>
            {r.reason && <p className="muted">{r.reason}</p>}
            <Guardrails figures={decisions.at(-1)?.figures ?? []} />
            <details>
              <summary>Event log ({r.events.length})</summary>
              <ul>
                {r.events.map((e) => (
                  <li key={e.seq}>
                    {new Date(e.at).toLocaleTimeString()} {e.kind} → step {e.step} ({e.trafficPercent} %) by {e.actor}: {e.reason}
                  </li>
                ))}
              </ul>
            </details>
          </section>
        );
      })}
    </>
  );
}
