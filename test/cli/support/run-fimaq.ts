import { PassThrough } from 'node:stream';
import { main } from '../../../workers/cli/fimaq';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `fimaq` CLI in process with `args`, collecting what it prints. */
export async function fimaq(...args: string[]): Promise<CliRun> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: string[] = [];
  const err: string[] = [];
  stdout.on('data', (d: Buffer) => out.push(d.toString()));
  stderr.on('data', (d: Buffer) => err.push(d.toString()));
  const code = await main(args, { stdout, stderr });
  return { code, stdout: out.join(''), stderr: err.join('') };
}
