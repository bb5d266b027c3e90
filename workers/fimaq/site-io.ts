/**
 * A quantization site's product run alone: its node on given operands, and the capture of every
 * site's activation operands over the calibration images (what stage 1 searches on).
 */
import * as tf from '@tensorflow/tfjs';
import { OperandHook, OnnxProgram, RunOptions } from '../engine/program';
import { OperandSpec, QuantSite } from '../engine/sites';

/** Activation operands of every site, concatenated over the batches, by site id and input index. */
export type CapturedInputs = Map<string, Map<number, tf.Tensor>>;

/** The site node's output for the given operand values (missing ones: the program's constants). */
export function siteProduct(program: OnnxProgram, site: QuantSite, operands: ReadonlyMap<number, tf.Tensor>): tf.Tensor {
  const node = program.nodes[site.nodeIndex];
  const feeds = new Map<string, tf.Tensor>();
  for (const [inputIndex, value] of operands) if (!program.isConstant(node.inputs[inputIndex])) feeds.set(node.inputs[inputIndex], value);
  const hook: OperandHook = (inputIndex, value) => operands.get(inputIndex) ?? value;
  return program.runNodes([site.nodeIndex], feeds, [node.outputs[0]], { hooks: new Map([[node.name, hook]]) })[0];
}

/** Runs the program over `batches` and keeps every activation operand of `sites` (caller disposes). */
export function captureActivations(
  program: OnnxProgram, inputName: string, batches: readonly tf.Tensor[], sites: readonly QuantSite[], options: RunOptions = {},
): CapturedInputs {
  const parts = new Map<string, Map<number, tf.Tensor[]>>();
  const hooks = new Map(options.hooks ?? []);
  for (const site of sites) {
    const bySite = new Map<number, tf.Tensor[]>();
    parts.set(site.id, bySite);
    const activations = site.operands.filter((o) => o.role === 'activation');
    activations.forEach((o) => bySite.set(o.inputIndex, []));
    const name = program.nodes[site.nodeIndex].name;
    const inner = hooks.get(name);
    hooks.set(name, (inputIndex, value) => {
      bySite.get(inputIndex)?.push(tf.keep(value.clone()));
      return inner ? inner(inputIndex, value) : value;
    });
  }
  for (const batch of batches) tf.tidy(() => { program.run({ [inputName]: batch }, { hooks }); });
  const captured: CapturedInputs = new Map();
  for (const [id, bySite] of parts) {
    const merged = new Map<number, tf.Tensor>();
    for (const [inputIndex, tensors] of bySite) {
      merged.set(inputIndex, tensors.length === 1 ? tensors[0] : tf.concat(tensors, 0));
      if (tensors.length > 1) tensors.forEach((t) => t.dispose());
    }
    captured.set(id, merged);
  }
  return captured;
}

export function disposeCaptured(captured: CapturedInputs): void {
  for (const bySite of captured.values()) for (const t of bySite.values()) t.dispose();
  captured.clear();
}

/** Axes of a value reduced when one scale covers an operand: all but the operand's own-scale axis. */
export function reducedAxes(operand: OperandSpec, rank: number): number[] {
  return Array.from({ length: rank }, (_, i) => i).filter((i) => i !== operand.axis);
}
