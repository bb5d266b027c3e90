#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { InputError } from '../data/errors';
import { processIO, type CliIO } from './context';
import { registerEvaluateCommand } from './evaluate-command';
import { registerQuantizeCommand } from './quantize-command';

/**
 * The `fimaq` program; each subcommand lives in its own module and registers itself here.
 * Subcommands inherit the exit override and output routing set before they are added.
 */
export function buildProgram(io: CliIO): Command {
  const program = new Command('fimaq')
    .description('FIMA-Q tools for ONNX vision transformers')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  registerEvaluateCommand(program, io);
  registerQuantizeCommand(program, io);
  return program;
}

/**
 * Runs the CLI and returns the exit code. User errors print one line on stderr, never a stack
 * trace; set FIMAQ_DEBUG=1 to see the stack of an unexpected error.
 */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    // Commander already printed its own message (usage errors) or the help.
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof InputError) {
      io.stderr.write(`fimaq: error: ${err.message}\n`);
    } else {
      io.stderr.write(`fimaq: unexpected error: ${firstLine(err)}${process.env.FIMAQ_DEBUG ? '' : ' (set FIMAQ_DEBUG=1 for details)'}\n`);
      if (process.env.FIMAQ_DEBUG) io.stderr.write(`${(err as Error).stack ?? ''}\n`);
    }
    return 1;
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
