/**
 * Stage 1: reparameterize post-LayerNorm activations, then search every site's scales on the
 * calibration images, site by site in model order.
 */
import * as tf from '@tensorflow/tfjs';
import { UniformQuantizer } from '../engine/quantizer';
import { CalibratedState, QuantizedModel } from '../engine/simulation';
import { QuantSite } from '../engine/sites';
import { applyFold, channelRange, findLayerNormFolds, foldFactors } from './reparameterize';
import { captureActivations, disposeCaptured, siteProduct } from './site-io';
import { minMaxQuantizer, searchSite } from './scale-search';

export interface CalibrationSettings {
  inputName: string;
  images: readonly tf.Tensor[];
  eqN: number;
  searchRounds: number;
  searchImages: number;
  /** Whether to search (calib) or keep min/max ranges (used by tests of the search's benefit). */
  search: boolean;
  onSite?: (done: number, total: number, site: QuantSite) => void | Promise<void>;
}

export interface CalibrationSummary {
  /** LayerNorm outputs folded into per-tensor-friendly form. */
  reparameterized: string[];
  seconds: number;
  /** Set when the result was taken from a calibration cache instead of computed. */
  reused?: boolean;
}

/** Calibrated states by `calibrationKey`. */
export type CalibrationCache = Map<string, { state: CalibratedState; summary: CalibrationSummary }>;

/** Everything stage 1's result depends on besides the model itself: sites, bit widths, search knobs, images. */
export function calibrationKey(model: QuantizedModel, settings: Pick<CalibrationSettings, 'images' | 'eqN' | 'searchRounds' | 'searchImages' | 'search'>): string {
  const sites = model.sites.map((site) => `${site.id}:${site.operands.map((o) => `${o.inputIndex}/${o.bits}/${o.granularity}`).join(',')}`);
  const images = settings.images.map((batch) => batch.shape.join('x'));
  return JSON.stringify({ sites, images, eqN: settings.eqN, rounds: settings.searchRounds, searchImages: settings.searchImages, search: settings.search });
}

/** Folds every foldable LayerNorm using per-channel ranges at the site's activation bit width. */
export function reparameterizeLayerNorms(model: QuantizedModel, inputName: string, images: readonly tf.Tensor[]): string[] {
  const folds = findLayerNormFolds(model.program, model.sites);
  if (folds.length === 0) return [];
  const readers = folds.map((f) => f.linears[0].site);
  const captured = captureActivations(model.program, inputName, images, readers);
  try {
    for (const fold of folds) {
      const site = fold.linears[0].site;
      const operand = site.operands.find((o) => o.role === 'activation' && o.tensor === fold.output);
      const value = captured.get(site.id)?.get(operand?.inputIndex ?? 0);
      if (!operand || !value) throw new Error(`no calibration capture of '${fold.output}'`);
      const { min, max } = channelRange(value);
      const factors = foldFactors(min, max, operand.bits);
      applyFold(model.program, fold, factors);
      [min, max, factors.r, factors.b].forEach((t) => t.dispose());
    }
  } finally {
    disposeCaptured(captured);
  }
  return folds.map((f) => f.output);
}

/** Stage 1 on `model`: sets every site's quantizers. */
export async function calibrate(model: QuantizedModel, settings: CalibrationSettings): Promise<CalibrationSummary> {
  const started = performance.now();
  const reparameterized = reparameterizeLayerNorms(model, settings.inputName, settings.images);
  const captured = captureActivations(model.program, settings.inputName, settings.images, model.sites);
  try {
    for (const [done, site] of model.sites.entries()) {
      const inputs = captured.get(site.id) as Map<number, tf.Tensor>;
      const quantizers = new Map<number, UniformQuantizer>();
      for (const operand of site.operands) {
        const value = operand.role === 'weight' ? model.program.constantValue(operand.tensor) : inputs.get(operand.inputIndex);
        quantizers.set(operand.inputIndex, minMaxQuantizer(operand, value as tf.Tensor));
      }
      if (settings.search) {
        const target = tf.tidy(() => siteProduct(model.program, site, inputs));
        searchSite({ program: model.program, site, inputs, target, quantizers, eqN: settings.eqN, searchImages: settings.searchImages }, settings.searchRounds);
        target.dispose();
      }
      for (const operand of site.operands) model.setQuantizer(site, operand, quantizers.get(operand.inputIndex) as UniformQuantizer);
      await settings.onSite?.(done + 1, model.sites.length, site);
    }
  } finally {
    disposeCaptured(captured);
  }
  return { reparameterized, seconds: (performance.now() - started) / 1000 };
}
