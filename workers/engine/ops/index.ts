/** The op registry: one lookup for every ONNX op the engine executes. */
import { InputError } from '../../data/errors';
import { GraphNode } from '../onnx/graph';
import { elementwiseKernels } from './elementwise';
import { KernelTable, OpKernel } from './kernel';
import { linearKernels } from './linear';
import { normalizationKernels } from './normalization';
import { shapeKernels } from './shape';

const kernels: KernelTable = { ...elementwiseKernels, ...linearKernels, ...normalizationKernels, ...shapeKernels };

export const supportedOps: readonly string[] = Object.keys(kernels).sort();

export function isSupported(node: Pick<GraphNode, 'opType' | 'domain'>): boolean {
  return (node.domain === '' || node.domain === 'ai.onnx') && Object.prototype.hasOwnProperty.call(kernels, node.opType);
}

export function kernelFor(node: GraphNode): OpKernel {
  if (!isSupported(node)) {
    const domain = node.domain && node.domain !== 'ai.onnx' ? ` (domain ${node.domain})` : '';
    throw new InputError(`unsupported ONNX op ${node.opType}${domain} at node '${node.name}'; the engine supports: ${supportedOps.join(', ')}`);
  }
  return kernels[node.opType];
}
