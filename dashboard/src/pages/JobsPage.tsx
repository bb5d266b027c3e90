import { useEffect, useState } from 'react';
import { rootFields } from '../api';
import { useLiveList } from '../useLiveList';
import { useQuery } from '../useQuery';

interface Job {
  id: string;
  modelId: string;
  status: string;
  method: string;
  bits: string;
  stage: string | null;
  block: number | null;
  blocks: number | null;
  progress: number;
  etaSeconds: number | null;
  attempt: number;
  worker: { workerId: string; backend: string; device: string } | null;
  log: string[];
  reason: string | null;
  variantId: string | null;
}

const FIELDS = 'id modelId status method bits stage block blocks progress etaSeconds attempt worker { workerId backend device } log reason variantId';
const JOBS = `{ quantizationJobs { ${FIELDS} } }`;
const JOB_UPDATED = `subscription($id: ID!) { quantizationJobUpdated(id: $id) { ${FIELDS} } }`;
const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

const pick = (data: Record<string, unknown>) => data.quantizationJobs as Job[];
const pickUpdate = (data: Record<string, unknown>) => data.quantizationJobUpdated as Job;
const finished = (job: Job) => FINISHED.has(job.status);

/** Quantization jobs, newest first; unfinished ones follow their progress live over graphql-ws. */
export function JobsPage() {
  const [available, setAvailable] = useState<boolean | null>(null);
  useEffect(() => {
    rootFields().then((f) => setAvailable(f.query.has('quantizationJobs') && f.subscription.has('quantizationJobUpdated')), () => setAvailable(false));
  }, []);
  const models = useQuery<{ models: Array<{ id: string; name: string; variants: Array<{ id: string; tag: string }> }> }>('{ models { id name variants { id tag } } }', {}, 10000);
  const modelName = (id: string) => models.data?.models.find((m) => m.id === id)?.name ?? id;
  const variantTag = (id: string) => models.data?.models.flatMap((m) => m.variants).find((v) => v.id === id)?.tag ?? id;
  const { records, error } = useLiveList<Job>({ enabled: available === true, query: JOBS, pick, subscription: JOB_UPDATED, pickUpdate, finished, refreshMs: 10000 });

  if (available === false) return <p>No quantization plugin is loaded in this gateway.</p>;
  if (error) return <p className="error">{error}</p>;
  if (!records) return <p>Loading…</p>;
  return (
    <>
      <h1>Quantization jobs</h1>
      {records.length === 0 && <p>No jobs yet.</p>}
      {records.map((job) => (
        <section key={job.id} className="card" data-testid={`job-${job.id}`} data-status={job.status}>
          <h2>
            {modelName(job.modelId)}: {job.bits} {job.method.toLowerCase()} <span className={`status-${job.status}`}>{job.status}</span>
            {job.variantId && <span className="muted"> → {variantTag(job.variantId)}</span>}
          </h2>
          <div className="progress">
            <div className="bar" style={{ width: `${Math.min(100, job.progress)}%` }} />
            <span data-testid="progress">{job.progress.toFixed(0)} %</span>
          </div>
          <p className="muted">
            {job.stage ?? 'waiting'}
            {job.blocks ? ` · block ${job.block ?? 0}/${job.blocks}` : ''}
            {job.etaSeconds !== null ? ` · about ${Math.ceil(job.etaSeconds)} s left` : ''}
            {job.attempt > 1 ? ` · attempt ${job.attempt}` : ''}
            {job.worker ? ` · ${job.worker.workerId} (${job.worker.backend}, ${job.worker.device})` : ''}
          </p>
          {job.reason && <p className="error">{job.reason}</p>}
          {job.log.length > 0 && <pre className="log">{job.log.slice(-5).join('\n')}</pre>}
        </section>
      ))}
    </>
  );
}
