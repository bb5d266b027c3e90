/**
 * Block partition for block-wise reconstruction. The graph is cut at single activations that every
 * path from the input to the output passes through (in a topological order, the points where only
 * one activation is live). The segments between cuts are grouped by role: patch embedding (before
 * the first attention), one transformer block per attention (attention, MLP and their residuals),
 * and the head. Each block reads one activation and writes one, so it runs on its own.
 */
import * as tf from '@tensorflow/tfjs';
import { OnnxProgram, RunOptions } from './program';
import { QuantSite } from './sites';

export type BlockKind = 'patch-embedding' | 'transformer' | 'head' | 'segment';

export interface Block {
  name: string;
  kind: BlockKind;
  /** Data-node indices, in execution order. */
  nodes: number[];
  input: string;
  output: string;
  sites: QuantSite[];
}

interface Segment {
  nodes: number[];
  input: string;
  output: string;
}

/** Activations through which every input-to-output path passes, in order, with the graph input first. */
function cutSegments(program: OnnxProgram): Segment[] {
  const order = program.dataNodes;
  const nodes = program.nodes;
  if (program.inputNames.length !== 1 || program.outputNames.length !== 1) {
    throw new Error('block partition needs a graph with one input and one output');
  }
  const [input] = program.inputNames;
  const [output] = program.outputNames;
  const isActivation = (name: string): boolean => name === input || order.some((i) => nodes[i].outputs.includes(name));
  const lastUse = new Map<string, number>();
  order.forEach((index, position) => {
    for (const name of nodes[index].inputs) if (name && isActivation(name)) lastUse.set(name, position);
  });
  lastUse.set(output, order.length);
  const live = new Set<string>([input]);
  const segments: Segment[] = [];
  let start = 0;
  let segmentInput = input;
  order.forEach((index, position) => {
    for (const name of nodes[index].outputs) if (name && (lastUse.get(name) ?? -1) > position) live.add(name);
    for (const name of [...live]) if ((lastUse.get(name) ?? -1) <= position) live.delete(name);
    if (live.size === 1) {
      const [cut] = live;
      if (nodes[index].outputs.includes(cut)) {
        segments.push({ nodes: order.slice(start, position + 1), input: segmentInput, output: cut });
        start = position + 1;
        segmentInput = cut;
      }
    }
  });
  if (start < order.length) segments.push({ nodes: order.slice(start), input: segmentInput, output });
  return segments;
}

function merge(segments: Segment[]): Segment {
  return { nodes: segments.flatMap((s) => s.nodes), input: segments[0].input, output: segments[segments.length - 1].output };
}

export function partitionBlocks(program: OnnxProgram, sites: readonly QuantSite[]): Block[] {
  const segments = cutSegments(program);
  const has = (segment: Segment, op: string): boolean => segment.nodes.some((i) => program.nodes[i].opType === op);
  const sitesIn = (segment: Segment): QuantSite[] => sites.filter((s) => segment.nodes.includes(s.nodeIndex));
  const attention = segments.map((s, i) => (has(s, 'Softmax') ? i : -1)).filter((i) => i >= 0);
  const groups: { kind: BlockKind; segments: Segment[] }[] = [];
  if (attention.length === 0) {
    segments.forEach((s) => groups.push({ kind: 'segment', segments: [s] }));
  } else {
    if (attention[0] > 0) groups.push({ kind: 'patch-embedding', segments: segments.slice(0, attention[0]) });
    attention.forEach((first, k) => {
      let end = attention[k + 1];
      if (end === undefined) {
        // The last block ends with the first segment after its attention that holds products (its MLP).
        const mlp = segments.findIndex((s, i) => i > first && sitesIn(s).length > 0);
        end = mlp >= 0 ? mlp + 1 : first + 1;
      }
      groups.push({ kind: 'transformer', segments: segments.slice(first, end) });
    });
    const consumed = groups.reduce((n, g) => n + g.segments.length, 0);
    if (consumed < segments.length) groups.push({ kind: 'head', segments: segments.slice(consumed) });
  }
  let transformerIndex = 0;
  return groups.map((g) => {
    const merged = merge(g.segments);
    const name = g.kind === 'transformer' ? `block${transformerIndex++}` : g.kind;
    return { name, kind: g.kind, ...merged, sites: sitesIn(merged) };
  });
}

/** Runs one block alone: its input activation in, its output activation out (owned by the caller). */
export function runBlock(program: OnnxProgram, block: Block, input: tf.Tensor, options: RunOptions = {}): tf.Tensor {
  return tf.tidy(() => program.runNodes(block.nodes, new Map([[block.input, input]]), [block.output], options)[0]);
}

/** One line per block with its boundary tensors and sites, for reports and logs. */
export function describeBlocks(blocks: readonly Block[]): string {
  return blocks.map((b) => `${b.name} (${b.kind}): ${b.input} -> ${b.output}, ${b.nodes.length} nodes, sites: ${b.sites.map((s) => `${s.id}[${s.kind}]`).join(', ') || 'none'}`).join('\n');
}
