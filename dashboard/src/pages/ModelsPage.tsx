import { bytes, number } from '../format';
import { useQuery } from '../useQuery';

interface VariantRow {
  id: string;
  tag: string;
  precision: string;
  method: string;
  status: string;
  artifactSize: number;
  parentVariantId: string | null;
  metrics: Record<string, unknown>;
}
interface ModelRow {
  name: string;
  task: string;
  variants: VariantRow[];
}

const MODELS = `{ models { name task variants { id tag precision method status artifactSize parentVariantId metrics } } }`;

/** Evaluation figures a job recorded with the variant, flattened to "name value" pairs. */
function figures(metrics: Record<string, unknown>): string {
  const entries = Object.entries(metrics).filter(([, v]) => typeof v === 'number' || typeof v === 'string');
  return entries.length ? entries.map(([k, v]) => `${k} ${typeof v === 'number' ? number(v, 4) : v}`).join(', ') : '—';
}

/** Every model with its variants: precision, size, method, lineage and evaluation figures. */
export function ModelsPage() {
  const { data, error } = useQuery<{ models: ModelRow[] }>(MODELS, {}, 15000);
  if (error) return <p className="error">{error}</p>;
  if (!data) return <p>Loading…</p>;
  if (data.models.length === 0) return <p>No models registered yet.</p>;
  return (
    <>
      <h1>Models</h1>
      {data.models.map((model) => {
        const tagOf = (id: string | null) => model.variants.find((v) => v.id === id)?.tag;
        return (
          <section key={model.name} className="card" data-testid={`model-${model.name}`}>
            <h2>
              <a href={`#/models/${encodeURIComponent(model.name)}`}>{model.name}</a> <span className="muted">{model.task.toLowerCase()}</span>
            </h2>
            <table>
              <thead>
                <tr>
                  <th>variant</th>
                  <th>precision</th>
                  <th>size</th>
                  <th>method</th>
                  <th>lineage</th>
                  <th>status</th>
                  <th>evaluation</th>
                </tr>
              </thead>
              <tbody>
                {model.variants.map((v) => (
                  <tr key={v.id} data-testid={`variant-${model.name}-${v.tag}`}>
                    <td>{v.tag}</td>
                    <td>{v.precision}</td>
                    <td>{bytes(v.artifactSize)}</td>
                    <td>{v.method}</td>
                    <td>{v.parentVariantId ? `${tagOf(v.parentVariantId) ?? v.parentVariantId} → ${v.tag}` : 'original'}</td>
                    <td className={`status-${v.status}`}>{v.status}</td>
                    <td>{figures(v.metrics)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <a href={`#/models/${encodeURIComponent(model.name)}`}>Live comparison →</a>
          </section>
        );
      })}
    </>
  );
}
