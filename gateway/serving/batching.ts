import { datatypeInfo, elementCount, type Tensor } from '../tensors/tensor';

/** Requests are merged along the first (batch) dimension into one run and split afterwards. */
export interface BatchingOptions {
  /** Rows per run; 1 turns batching off. */
  maxBatchSize: number;
  /** How long the first waiting request may wait for company before running alone. */
  maxQueueDelayMs: number;
}

/** Rows along the batch dimension of a request's inputs (all inputs agree, checked on admission). */
export function rowsOf(inputs: readonly Tensor[]): number {
  return inputs[0]?.shape[0] ?? 1;
}

/** Whether two requests can share a run: the same inputs, datatypes, per-row shapes and outputs. */
export function canShareRun(a: { inputs: readonly Tensor[]; outputNames: readonly string[] }, b: typeof a): boolean {
  if (a.inputs.length !== b.inputs.length || a.outputNames.join('\n') !== b.outputNames.join('\n')) return false;
  return a.inputs.every((x, i) => {
    const y = b.inputs[i];
    return x.name === y.name && x.datatype === y.datatype && x.shape.length === y.shape.length && x.shape.every((d, k) => k === 0 || d === y.shape[k]);
  });
}

/** One tensor per input name holding every request's rows, in request order. */
export function concatRequests(requests: ReadonlyArray<readonly Tensor[]>): Tensor[] {
  const totalRows = requests.reduce((sum, inputs) => sum + rowsOf(inputs), 0);
  return requests[0].map((first, index) => {
    const shape = [totalRows, ...first.shape.slice(1)];
    const type = datatypeInfo(first.datatype);
    if (!type) throw new Error(`cannot batch datatype ${first.datatype}`);
    const data = type.create(elementCount(shape));
    let offset = 0;
    for (const inputs of requests) {
      const part = inputs[index].data;
      (data as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(part as ArrayLike<unknown>, offset);
      offset += part.length;
    }
    return { name: first.name, datatype: first.datatype, shape, data };
  });
}

/** The inverse of `concatRequests` for the outputs: each request gets its own rows back. */
export function splitOutputs(outputs: readonly Tensor[], rowsPerRequest: readonly number[]): Tensor[][] {
  const totalRows = rowsPerRequest.reduce((a, b) => a + b, 0);
  const perRequest: Tensor[][] = rowsPerRequest.map(() => []);
  for (const output of outputs) {
    if (output.shape[0] !== totalRows) throw new Error(`output ${output.name} has ${output.shape[0]} rows for a batch of ${totalRows}`);
    const rowLength = totalRows === 0 ? 0 : output.data.length / totalRows;
    let row = 0;
    rowsPerRequest.forEach((rows, i) => {
      const data = output.data.slice(row * rowLength, (row + rows) * rowLength);
      perRequest[i].push({ name: output.name, datatype: output.datatype, shape: [rows, ...output.shape.slice(1)], data });
      row += rows;
    });
  }
  return perRequest;
}
