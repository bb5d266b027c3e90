import type { ModelCard } from '../common/model-card';
import { InputError } from '../data/errors';
import type { ImageDataset } from '../data/types';
import type { EvaluationTask } from './evaluate';
import type { OutputSignature } from './onnx-model';

/** The task a command works with, and where it came from (reported, so an inference is never silent). */
export interface TaskChoice {
  task: EvaluationTask;
  source: 'option' | 'card' | 'inferred';
  /** Why an inferred task was chosen. */
  reason?: string;
}

/**
 * The task: `--task` when given, else the model card's, else inferred from the output and the data.
 * A classifier's output is [N, C] with one score per class, so an output of that shape whose C is
 * the number of classes the labels span is taken as classification. Anything else (an encoder's
 * [N, D] embedding, other ranks, unlabeled data) is ambiguous and asks for --task.
 */
export function chooseTask(
  option: EvaluationTask | undefined,
  card: Pick<ModelCard, 'task'> | undefined,
  output: OutputSignature,
  data: Pick<ImageDataset, 'classCount' | 'description'>,
): TaskChoice {
  if (option) return { task: option, source: 'option' };
  if (card) return { task: card.task === 'RETRIEVAL' ? 'retrieval' : 'classification', source: 'card' };
  const ask = (why: string): InputError =>
    new InputError(`no model card next to the model and the task cannot be inferred: ${why}; pass --task classification|retrieval`);
  const shape = output.shape ?? [];
  const shown = `output "${output.name}" is [${shape.map((d, i) => (i === 0 ? 'N' : String(d))).join(', ')}]`;
  if (shape.length !== 2 || typeof shape[1] !== 'number' || shape[1] < 1) throw ask(`${shown}, not [N, classes]`);
  if (data.classCount === undefined) throw ask(`${shown} and ${data.description} has no labels to compare it with`);
  if (data.classCount !== shape[1]) throw ask(`${shown} but the labels span ${data.classCount} classes`);
  return { task: 'classification', source: 'inferred', reason: `${shown}, one score per class of the ${data.classCount} the labels span` };
}

/** One line for reports: `classification (from the model card)`. */
export function describeTaskChoice(choice: TaskChoice): string {
  if (choice.source === 'inferred') return `${choice.task} (inferred: ${choice.reason}; no model card)`;
  return `${choice.task} (${choice.source === 'option' ? '--task' : 'from the model card'})`;
}
