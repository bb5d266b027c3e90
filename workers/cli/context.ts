/**
 * What a fimaq subcommand writes to. The real CLI passes the process streams; tests pass
 * buffers, so commands run in-process without spawning.
 */
export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Whether a stream is a terminal, where progress bars make sense. */
export function isTerminal(stream: NodeJS.WritableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}
