/**
 * How raw images become a model's input tensor. Stored with each registered model, read by the
 * dataset layer (CLI, worker) and by the gateway's image endpoints, so every path feeds a model
 * exactly what it was trained on. Pure module: the gateway and the workers may both import it.
 */
export type TensorLayout = 'NCHW' | 'NHWC';

export interface Preprocessing {
  /** Name of the model's image input. */
  inputName: string;
  layout: TensorLayout;
  height: number;
  width: number;
  /** 1 (grayscale) or 3 (RGB). */
  channels: number;
  /** Per-channel mean and std applied after scaling pixels to [0, 1]: x = (p / 255 - mean) / std. */
  mean: number[];
  std: number[];
}

/** Throws a message that names the bad field; returns the value typed when it is valid. */
export function validatePreprocessing(p: Preprocessing): Preprocessing {
  const problems: string[] = [];
  if (!p.inputName) problems.push('inputName must not be empty');
  if (p.layout !== 'NCHW' && p.layout !== 'NHWC') problems.push(`layout must be NCHW or NHWC, got ${String(p.layout)}`);
  for (const [key, v] of [['height', p.height], ['width', p.width]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 4096) problems.push(`${key} must be an integer in 1..4096, got ${v}`);
  }
  if (p.channels !== 1 && p.channels !== 3) problems.push(`channels must be 1 or 3, got ${p.channels}`);
  for (const [key, v] of [['mean', p.mean], ['std', p.std]] as const) {
    if (!Array.isArray(v) || v.length !== p.channels || v.some((x) => !Number.isFinite(x))) {
      problems.push(`${key} must hold ${p.channels} finite number(s)`);
    }
  }
  if (p.std?.some((x) => x === 0)) problems.push('std must not contain 0');
  if (problems.length) throw new Error(`invalid preprocessing: ${problems.join('; ')}`);
  return p;
}
