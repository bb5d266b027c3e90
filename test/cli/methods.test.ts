import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../workers/cli/fimaq';
import { QUANTIZATION_METHODS } from '../../workers/common/jobs/messages';
import { methodNames } from '../../workers/quantization';

const ROOT = join(__dirname, '..', '..');

async function helpOf(command: string): Promise<string> {
  const stdout = new PassThrough();
  const out: string[] = [];
  stdout.on('data', (d: Buffer) => out.push(d.toString()));
  await main([command, '--help'], { stdout, stderr: new PassThrough() });
  return out.join('');
}

describe('one set of quantization methods and defaults for the CLI, GraphQL and the README', () => {
  it('quantizeModel accepts exactly the methods fimaq quantize offers', () => {
    expect(QUANTIZATION_METHODS.map((m) => m.toLowerCase()).sort()).toEqual([...methodNames].sort());
  });

  it('both default to FIMA-Q', async () => {
    expect(await helpOf('quantize')).toMatch(/--method <name>[\s\S]*?default: "fimaq"/);
    expect(readFileSync(join(ROOT, 'schema', 'schema.graphql'), 'utf8')).toMatch(/method: QuantizationMethod! = FIMAQ/);
  });

  it('the README lists the methods both accept', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const listed = /methods: ([a-z_, ]+)\)/.exec(readme)?.[1].split(',').map((m) => m.trim());
    expect(listed?.sort()).toEqual([...methodNames].sort());
  });
});
