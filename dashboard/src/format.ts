/** Display helpers shared by the pages. */
export const percent = (value: number | null | undefined, digits = 1): string => (value === null || value === undefined ? '—' : `${(value * 100).toFixed(digits)} %`);
export const ms = (value: number | null | undefined): string => (value === null || value === undefined ? '—' : value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`);
export const number = (value: number | null | undefined, digits = 3): string => (value === null || value === undefined ? '—' : Number(value.toFixed(digits)).toString());

export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = value;
  let unit = 0;
  while (v >= 1024 && unit < units.length - 1) {
    v /= 1024;
    unit++;
  }
  return `${v.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export interface IntervalValue {
  estimate: number;
  lower: number | null;
  upper: number | null;
}

export const interval = (value: IntervalValue | null | undefined, format: (n: number) => string = (n) => percent(n)): string =>
  value ? `${format(value.estimate)} [${value.lower === null ? '−∞' : format(value.lower)}, ${value.upper === null ? '∞' : format(value.upper)}]` : '—';
