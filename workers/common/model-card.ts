import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { validatePreprocessing, type Preprocessing } from './preprocessing';

/**
 * A model card: the JSON file next to an ONNX model (`m.onnx` → `m.card.json`) that says what the
 * model does and how to feed it. Pure module: the CLI, the worker and the gateway read cards.
 */
export type ModelTask = 'CLASSIFICATION' | 'RETRIEVAL';

export interface ModelCard {
  name: string;
  task: ModelTask;
  preprocessing: Preprocessing;
  /** Class names in output order (classification) or of the training classes (retrieval). */
  labels?: string[];
  /** Name of the output to evaluate: logits for classification, the embedding for retrieval. */
  output?: string;
  /** Figures measured when the model was made, e.g. `top1`, `recallAt1`, or a variant's evaluation. */
  metrics?: Record<string, unknown>;
  /** Free-form: architecture, training, how to regenerate. */
  [extra: string]: unknown;
}

/** The card paths looked for next to a model, most specific first. */
export function modelCardPaths(modelPath: string): string[] {
  return [modelPath.replace(/\.onnx$/i, '') + '.card.json', modelPath + '.card.json'];
}

/** Reads the card of a model when there is one; a malformed card is an error, a missing one is not. */
export function readModelCard(modelPath: string): ModelCard | undefined {
  const path = modelCardPaths(modelPath).find((p) => existsSync(p));
  if (!path) return undefined;
  return parseModelCard(readFileSync(path, 'utf8'), path);
}

/** Writes a model's card next to it, where `readModelCard` looks first (`m.onnx` → `m.card.json`). */
export function writeModelCard(modelPath: string, card: ModelCard): void {
  writeFileSync(modelCardPaths(modelPath)[0], JSON.stringify(card, null, 2) + '\n');
}

export function parseModelCard(text: string, path: string): ModelCard {
  let card: Partial<ModelCard>;
  try {
    card = JSON.parse(text) as Partial<ModelCard>;
  } catch (err) {
    throw new Error(`${path}: model card is not valid JSON (${(err as Error).message})`);
  }
  if (card.task !== 'CLASSIFICATION' && card.task !== 'RETRIEVAL') {
    throw new Error(`${path}: model card task must be CLASSIFICATION or RETRIEVAL, got ${String(card.task)}`);
  }
  if (!card.preprocessing) throw new Error(`${path}: model card has no preprocessing`);
  try {
    validatePreprocessing(card.preprocessing);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  if (card.labels !== undefined && (!Array.isArray(card.labels) || card.labels.some((l) => typeof l !== 'string'))) {
    throw new Error(`${path}: model card labels must be a list of strings`);
  }
  return card as ModelCard;
}
