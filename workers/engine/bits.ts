/** Bit-width specs such as "w4a4" or "w4a8". */
import { InputError } from '../data/errors';

export interface BitWidths {
  weightBits: number;
  activationBits: number;
}

export const MIN_BITS = 2;
/** The exporter stores integers in int8/uint8. */
export const MAX_BITS = 8;

export function parseBits(spec: string): BitWidths {
  const m = /^w(\d+)a(\d+)$/i.exec(spec.trim());
  if (!m) throw new InputError(`bits must look like w4a4 or w4a8 (weight and activation bit widths), got "${spec}"`);
  const widths = { weightBits: Number(m[1]), activationBits: Number(m[2]) };
  for (const [what, b] of [['weight', widths.weightBits], ['activation', widths.activationBits]] as const) {
    if (b < MIN_BITS || b > MAX_BITS) throw new InputError(`${what} bits must be within ${MIN_BITS}..${MAX_BITS}, got ${b} in "${spec}"`);
  }
  return widths;
}

export function formatBits(widths: BitWidths): string {
  return `w${widths.weightBits}a${widths.activationBits}`;
}
