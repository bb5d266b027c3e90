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
  overlapAtK: Array<number | null>;
  rankCorrelation: Array<number | null>;
  mapAtK: Array<number | null>;
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
    accuracy: IntervalValue | null;
    retrieval: RetrievalWindow | null;
  };
}
interface RetrievalWindow {
  k: number;
  cosine: IntervalValue | null;
  overlapAtK: IntervalValue | null;
  rankCorrelation: IntervalValue | null;
  recallAtK: IntervalValue | null;
  mapAtK: IntervalValue | null;
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
    retrieval: {
      k: number;
      recallAtK: { difference: IntervalValue | null; paired: boolean; pValue: number | null; significant: boolean };
      mapAtK: { difference: IntervalValue | null; paired: boolean; significant: boolean };
    } | null;
  };
}

const METRICS = `query($model: String!, $from: DateTimeISO!, $step: Int!) {
  modelMetrics(model: $model, from: $from, step: $step) {
    steps
    variants { variantTag precision requestRate errorRate latencyP50Ms latencyP95Ms latencyP99Ms computeP50Ms computeP95Ms computeP99Ms
      agreement accuracy overlapAtK rankCorrelation mapAtK shadowRequests shadowDropped
      window { requests errorRate shadowRequests shadowDropped klDivergence latencyMs { p50 p95 p99 } computeMs { p50 p95 p99 }
        agreement { estimate lower upper } accuracy { estimate lower upper }
        retrieval { k cosine { estimate lower upper } overlapAtK { estimate lower upper } rankCorrelation { estimate lower upper }
          recallAtK { estimate lower upper } mapAtK { estimate lower upper } } } } }
  trafficPolicy(model: $model) { version routes { variantTag weight } shadows { variantTag mirrorPercent } } }`;

const COMPARE = `query($model: String!, $a: String!, $b: String!, $from: DateTimeISO!) {
  compareVariants(model: $model, a: $a, b: $b, from: $from) {
    accuracy { difference { estimate lower upper } paired pValue significant }
    errorRate { difference { estimate lower upper } significant }
    latency { measure quantile ratio { estimate lower upper } significant }
    retrieval { k recallAtK { difference { estimate lower upper } paired pValue significant } mapAtK { difference { estimate lower upper } paired significant } } } }`;

const RANGES = [
  { label: '15 min', minutes: 15, step: 60 },
  { label: '1 h', minutes: 60, step: 60 },
  { label: '6 h', minutes: 360, step: 300 },
  { label: '24 h', minutes: 1440, step: 900 },
];

/** A column of the window table that depends on the model's task. */
interface QualityColumn {
  header: string;
  cell: (window: Series['window']) => string;
}

const CLASSIFICATION_COLUMNS: QualityColumn[] = [
  { header: 'accuracy [95 %]', cell: (w) => interval(w.accuracy) },
  { header: 'agreement [95 %]', cell: (w) => interval(w.agreement) },
  { header: 'KL', cell: (w) => number(w.klDivergence, 4) },
];

/** Retrieval: the neighbour figures against the answering variant, then recall and mAP from feedback, each with its interval. */
function retrievalColumns(k: number): QualityColumn[] {
  const figure = (header: string, pick: (r: RetrievalWindow) => IntervalValue | null, format?: (n: number) => string): QualityColumn => ({
    header: `${header} [95 %]`,
    cell: (w) => interval(w.retrieval && pick(w.retrieval), format),
  });
  const plain = (n: number) => number(n, 3);
  return [
    figure('cosine', (r) => r.cosine, (n) => number(n, 4)),
    figure(`overlap@${k}`, (r) => r.overlapAtK),
    figure('rank corr.', (r) => r.rankCorrelation, plain),
    figure(`recall@${k}`, (r) => r.recallAtK),
    figure(`mAP@${k}`, (r) => r.mapAtK, plain),
  ];
}

function ComparisonTable({ model, a, b, from }: { model: string; a: string; b: string; from: string }) {
  const { data, error } = useQuery<Comparison>(COMPARE, { model, a, b, from }, 10000);
  if (error) return <p className="error">{error}</p>;
  if (!data) return null;
  const c = data.compareVariants;
  const mark = (significant: boolean) => (significant ? <strong className="significant">significant</strong> : <span className="muted">not significant</span>);
  const ratio = (n: number) => `×${n.toFixed(2)}`;
  const pairing = (p: { paired: boolean; pValue?: number | null }) => (p.paired ? (p.pValue === undefined ? 'paired' : `paired, McNemar p = ${number(p.pValue, 4)}`) : 'unpaired');
  const r = c.retrieval;
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
        {r ? (
          <>
            <tr data-testid="compare-recall">
              <td>
                recall@{r.k} ({pairing(r.recallAtK)})
              </td>
              <td>{interval(r.recallAtK.difference, (n) => percent(n, 2))}</td>
              <td>{mark(r.recallAtK.significant)}</td>
            </tr>
            <tr data-testid="compare-map">
              <td>
                mAP@{r.k} ({pairing({ paired: r.mapAtK.paired })})
              </td>
              <td>{interval(r.mapAtK.difference, (n) => number(n, 4))}</td>
              <td>{mark(r.mapAtK.significant)}</td>
            </tr>
          </>
        ) : (
          <tr>
            <td>accuracy ({pairing(c.accuracy)})</td>
            <td>{interval(c.accuracy.difference, (n) => percent(n, 2))}</td>
            <td>{mark(c.accuracy.significant)}</td>
          </tr>
        )}
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
      retrieval: [
        ...per((s) => s.accuracy, ' recall@k'),
        ...per((s) => s.mapAtK, ' mAP@k', [6, 3]),
        ...per((s) => s.overlapAtK, ' overlap@k', [2, 2]),
        ...per((s) => s.rankCorrelation, ' rank corr.', [8, 2, 2, 2]),
      ],
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
  // A retrieval model's variants all carry retrieval figures; a classifier's none.
  const k = variants.find((v) => v.window.retrieval)?.window.retrieval?.k;
  const quality = k === undefined ? CLASSIFICATION_COLUMNS : retrievalColumns(k);
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
              {quality.map((column) => (
                <th key={column.header}>{column.header}</th>
              ))}
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
                {quality.map((column) => (
                  <td key={column.header}>{column.cell(v.window)}</td>
                ))}
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
        {k === undefined ? (
          <Chart title="Accuracy and agreement" times={times} series={charts.quality} testId="chart-quality" />
        ) : (
          <Chart title={`recall@${k}, mAP@${k}, overlap@${k}, rank correlation`} times={times} series={charts.retrieval} testId="chart-retrieval" />
        )}
        <Chart title="Shadow requests and drops" times={times} series={charts.drops} testId="chart-drops" />
      </div>
    </>
  );
}
