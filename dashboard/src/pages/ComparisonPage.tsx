import { useMemo, useState } from 'react';
import { Chart, type ChartSeries } from '../components/Chart';
import { interval, ms, number, percent, type IntervalValue } from '../format';
import { useQuery } from '../useQuery';

interface Quantiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}
interface Series {
  variantTag: string;
  precision: string;
  requestRate: number[];
  errorRate: Array<number | null>;
  latencyP50Ms: Array<number | null>;
  latencyP95Ms: Array<number | null>;
  latencyP99Ms: Array<number | null>;
  computeP50Ms: Array<number | null>;
  computeP95Ms: Array<number | null>;
  computeP99Ms: Array<number | null>;
  agreement: Array<number | null>;
  accuracy: Array<number | null>;
  shadowRequests: number[];
  shadowDropped: number[];
  window: {
    requests: number;
    errorRate: number | null;
    shadowRequests: number;
    shadowDropped: number;
    latencyMs: Quantiles;
    computeMs: Quantiles;
    agreement: IntervalValue | null;
    klDivergence: number | null;
    overlapAtK: number | null;
    accuracy: IntervalValue | null;
  };
}
interface Metrics {
  modelMetrics: { steps: string[]; variants: Series[] };
  trafficPolicy: { version: number; routes: Array<{ variantTag: string; weight: number }>; shadows: Array<{ variantTag: string; mirrorPercent: number }> };
}
interface Comparison {
  compareVariants: {
    accuracy: { difference: IntervalValue | null; paired: boolean; pValue: number | null; significant: boolean };
    errorRate: { difference: IntervalValue | null; significant: boolean };
    latency: Array<{ measure: string; quantile: number; ratio: IntervalValue | null; significant: boolean }>;
  };
}

const METRICS = `query($model: String!, $from: DateTimeISO!, $step: Int!) {
  modelMetrics(model: $model, from: $from, step: $step) {
    steps
    variants { variantTag precision requestRate errorRate latencyP50Ms latencyP95Ms latencyP99Ms computeP50Ms computeP95Ms computeP99Ms
      agreement accuracy shadowRequests shadowDropped
      window { requests errorRate shadowRequests shadowDropped klDivergence overlapAtK latencyMs { p50 p95 p99 } computeMs { p50 p95 p99 }
        agreement { estimate lower upper } accuracy { estimate lower upper } } } }
  trafficPolicy(model: $model) { version routes { variantTag weight } shadows { variantTag mirrorPercent } } }`;

const COMPARE = `query($model: String!, $a: String!, $b: String!, $from: DateTimeISO!) {
  compareVariants(model: $model, a: $a, b: $b, from: $from) {
    accuracy { difference { estimate lower upper } paired pValue significant }
    errorRate { difference { estimate lower upper } significant }
    latency { measure quantile ratio { estimate lower upper } significant } } }`;

const RANGES = [
  { label: '15 min', minutes: 15, step: 60 },
  { label: '1 h', minutes: 60, step: 60 },
  { label: '6 h', minutes: 360, step: 300 },
  { label: '24 h', minutes: 1440, step: 900 },
];

function ComparisonTable({ model, a, b, from }: { model: string; a: string; b: string; from: string }) {
  const { data, error } = useQuery<Comparison>(COMPARE, { model, a, b, from }, 10000);
  if (error) return <p className="error">{error}</p>;
  if (!data) return null;
  const c = data.compareVariants;
  const mark = (significant: boolean) => (significant ? <strong className="significant">significant</strong> : <span className="muted">not significant</span>);
  const ratio = (n: number) => `×${n.toFixed(2)}`;
  return (
    <table data-testid="comparison">
      <thead>
        <tr>
          <th>{b} against {a}</th>
          <th>difference [95 % interval]</th>
          <th />
        </tr>
      </thead>
      <tbody>
        <tr>
          <td>accuracy ({c.accuracy.paired ? `paired, McNemar p = ${number(c.accuracy.pValue, 4)}` : 'unpaired'})</td>
          <td>{interval(c.accuracy.difference, (n) => percent(n, 2))}</td>
          <td>{mark(c.accuracy.significant)}</td>
        </tr>
        <tr>
          <td>error rate</td>
          <td>{interval(c.errorRate.difference, (n) => percent(n, 2))}</td>
          <td>{mark(c.errorRate.significant)}</td>
        </tr>
        {c.latency.map((l) => (
          <tr key={`${l.measure}${l.quantile}`}>
            <td>
              {l.measure === 'compute' ? 'compute' : 'end-to-end'} p{Math.round(l.quantile * 100)}
            </td>
            <td>{l.ratio ? interval(l.ratio, ratio) : 'no data on one side'}</td>
            <td>{mark(l.significant)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A model's variants side by side, live: latency, compute, accuracy, agreement, traffic split, shadow drops. */
export function ComparisonPage({ model }: { model: string }) {
  const [range, setRange] = useState(RANGES[1]);
  // The window start moves only when the range changes; refreshes extend it to now.
  const from = useMemo(() => new Date(Date.now() - range.minutes * 60_000).toISOString(), [range]);
  const { data, error } = useQuery<Metrics>(METRICS, { model, from, step: range.step }, 5000);
  const times = useMemo(() => data?.modelMetrics.steps.map((s) => new Date(s)) ?? [], [data]);
  const charts = useMemo(() => {
    const variants = data?.modelMetrics.variants ?? [];
    const per = (pick: (s: Series) => Array<number | null>, suffix = '', dash?: number[]): ChartSeries[] =>
      variants.map((s) => ({ label: `${s.variantTag}${suffix}`, values: pick(s), dash }));
    return {
      rate: per((s) => s.requestRate),
      latency: [...per((s) => s.latencyP50Ms, ' p50'), ...per((s) => s.latencyP95Ms, ' p95', [6, 3]), ...per((s) => s.latencyP99Ms, ' p99', [2, 2])],
      compute: [...per((s) => s.computeP50Ms, ' p50'), ...per((s) => s.computeP95Ms, ' p95', [6, 3]), ...per((s) => s.computeP99Ms, ' p99', [2, 2])],
      quality: [...per((s) => s.accuracy, ' accuracy'), ...per((s) => s.agreement, ' agreement', [6, 3])],
      drops: [...per((s) => s.shadowRequests, ' shadow requests'), ...per((s) => s.shadowDropped, ' dropped', [6, 3])],
    };
  }, [data]);
  if (error) return <p className="error">{error}</p>;
  if (!data) return <p>Loading…</p>;
  const { variants } = data.modelMetrics;
  const policy = data.trafficPolicy;
  const totalWeight = policy.routes.reduce((sum, r) => sum + r.weight, 0);
  const primary = policy.routes.find((r) => r.weight > 0)?.variantTag;
  const candidates = variants.filter((v) => v.variantTag !== primary);
  return (
    <>
      <h1>
        {model} <span className="muted">live comparison</span>
      </h1>
      <div className="toolbar">
        {RANGES.map((r) => (
          <button key={r.label} className={r === range ? 'active' : undefined} onClick={() => setRange(r)}>
            {r.label}
          </button>
        ))}
      </div>
      <section className="card">
        <h2>Traffic split (policy version {policy.version})</h2>
        <ul className="split" data-testid="traffic-split">
          {policy.routes.map((r) => (
            <li key={r.variantTag}>
              {r.variantTag}: {percent(totalWeight > 0 ? r.weight / totalWeight : 0, 0)} of answers
            </li>
          ))}
          {policy.shadows.map((s) => (
            <li key={`shadow-${s.variantTag}`}>
              {s.variantTag}: shadow, {s.mirrorPercent} % mirrored
            </li>
          ))}
        </ul>
      </section>
      <section className="card">
        <h2>Over the window</h2>
        <table data-testid="window">
          <thead>
            <tr>
              <th>variant</th>
              <th>answered</th>
              <th>error rate</th>
              <th>latency p50 / p95 / p99</th>
              <th>compute p50 / p95 / p99</th>
              <th>accuracy [95 %]</th>
              <th>agreement [95 %]</th>
              <th>KL</th>
              <th>shadowed / dropped</th>
            </tr>
          </thead>
          <tbody>
            {variants.map((v) => (
              <tr key={v.variantTag} data-testid={`window-${v.variantTag}`}>
                <td>
                  {v.variantTag} <span className="muted">{v.precision}</span>
                </td>
                <td>{v.window.requests}</td>
                <td>{percent(v.window.errorRate, 2)}</td>
                <td>{[v.window.latencyMs.p50, v.window.latencyMs.p95, v.window.latencyMs.p99].map(ms).join(' / ')}</td>
                <td>{[v.window.computeMs.p50, v.window.computeMs.p95, v.window.computeMs.p99].map(ms).join(' / ')}</td>
                <td>{interval(v.window.accuracy)}</td>
                <td>{interval(v.window.agreement)}</td>
                <td>{number(v.window.klDivergence, 4)}</td>
                <td>
                  {v.window.shadowRequests} / {v.window.shadowDropped}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      {primary && candidates.length > 0 && (
        <section className="card">
          <h2>Significance</h2>
          {candidates.map((c) => (
            <ComparisonTable key={c.variantTag} model={model} a={primary} b={c.variantTag} from={from} />
          ))}
        </section>
      )}
      <div className="charts">
        <Chart title="Answered requests / s" times={times} series={charts.rate} unit="req/s" testId="chart-rate" />
        <Chart title="End-to-end latency (ms)" times={times} series={charts.latency} unit="ms" testId="chart-latency" />
        <Chart title="onnxruntime compute (ms)" times={times} series={charts.compute} unit="ms" testId="chart-compute" />
        <Chart title="Accuracy and agreement" times={times} series={charts.quality} testId="chart-quality" />
        <Chart title="Shadow requests and drops" times={times} series={charts.drops} testId="chart-drops" />
      </div>
    </>
  );
}
