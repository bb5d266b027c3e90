import { useEffect, useRef } from 'react';
import uPlot from 'uplot';

export interface ChartSeries {
  label: string;
  values: Array<number | null>;
  dash?: number[];
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f'];

/** A uPlot time-series chart; `times` are the step starts, one value per step in each series. */
export function Chart({ title, times, series, unit, testId }: { title: string; times: Date[]; series: ChartSeries[]; unit?: string; testId?: string }) {
  const container = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const options: uPlot.Options = {
      title,
      width: Math.max(320, element.clientWidth),
      height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: unit, size: 60 }],
      series: [
        {},
        ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, dash: s.dash, spanGaps: false, points: { show: true, size: 4 } })),
      ],
    };
    const data: uPlot.AlignedData = [times.map((t) => t.getTime() / 1000), ...series.map((s) => s.values)];
    const plot = new uPlot(options, data, element);
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(320, element.clientWidth), height: 220 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [title, times, series, unit]);

  return <div className="chart" ref={container} data-testid={testId} />;
}
