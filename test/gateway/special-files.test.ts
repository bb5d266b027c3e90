import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { fimaqPlugin, registerTinyClassifier } from '../jobs/support/jobs-harness';
import { ADMIN_TOKEN, FIXTURES, startTestGateway, type TestGateway } from '../support/gateway-harness';

/**
 * Paths admins give (a model's localPath, a dataset's path) and images anyone sends are read by
 * the gateway itself. Special files (devices, FIFOs, sockets, /proc) and decompression bombs
 * must be refused with BAD_USER_INPUT or 413 without the gateway's memory growing: the second
 * suite runs the built gateway as its own process and reads its peak RSS from /proc.
 */

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'gateway', 'main.js');
/** Stated bound: peak RSS may grow by at most this much while every bomb below is sent. */
const PEAK_RSS_GROWTH_CAP_MB = 64;

const REGISTER = `mutation($input: RegisterModelInput!) { registerModel(input: $input) { model { name } } }`;
const QUANTIZE = `mutation($input: QuantizeModelInput!) { quantizeModel(input: $input) { id } }`;

type GraphQLReply = { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };

async function graphql(url: string, query: string, variables: Record<string, unknown>): Promise<GraphQLReply> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLReply;
}

function registerInput(name: string, localPath: string) {
  return { input: { name, task: 'CLASSIFICATION', localPath, preprocessing: { height: 28, width: 28, channels: 1 } } };
}

function quantizeInput(calibrationPath: string, format: string) {
  return { input: { model: 'tiny', bits: 'W4A4', method: 'RTN', calibSize: 8, calibration: { path: calibrationPath, format } } };
}

/** Special files of every kind, and links to them, in a fresh directory. */
function specialFiles(dir: string): { fifo: string; socket: net.Server; socketPath: string; linkToZero: string; folderWithFifo: string } {
  const fifo = path.join(dir, 'images.npy');
  execFileSync('mkfifo', [fifo]);
  const linkToZero = path.join(dir, 'zero.onnx');
  fs.symlinkSync('/dev/zero', linkToZero);
  const folderWithFifo = path.join(dir, 'folder');
  fs.mkdirSync(path.join(folderWithFifo, '0'), { recursive: true });
  execFileSync('mkfifo', [path.join(folderWithFifo, '0', 'a.png')]);
  const socketPath = path.join(dir, 'listening.sock');
  const socket = net.createServer().listen(socketPath);
  return { fifo, socket, socketPath, linkToZero, folderWithFifo };
}

describe('admin paths stay inside LOCAL_PATH_ROOTS', () => {
  let gateway: TestGateway;
  let outside: string;

  beforeAll(async () => {
    gateway = await startTestGateway({ plugins: [fimaqPlugin()] });
    await registerTinyClassifier(gateway);
    // A directory that is not a root: the harness roots are the fixtures, the temporary folder and the demo assets.
    fs.mkdirSync(path.join(ROOT, 'dist'), { recursive: true });
    outside = fs.mkdtempSync(path.join(ROOT, 'dist', 'outside-'));
    fs.copyFileSync(path.join(FIXTURES, 'tiny-classifier.onnx'), path.join(outside, 'model.onnx'));
  });
  afterAll(async () => {
    await gateway?.stop();
    fs.rmSync(outside, { recursive: true, force: true });
  });

  test('a path outside every root, however it is spelled, is refused and nothing is registered', async () => {
    const tmpLink = fs.mkdtempSync(path.join(os.tmpdir(), 'roots-'));
    fs.symlinkSync(path.join(outside, 'model.onnx'), path.join(tmpLink, 'linked.onnx'));
    const spellings = fc.constantFrom(
      '/etc/passwd',
      '/dev/zero',
      '/proc/self/environ',
      path.join(outside, 'model.onnx'),
      path.relative(process.cwd(), path.join(outside, 'model.onnx')),
      `${FIXTURES}/../../../${path.relative(ROOT, outside)}/model.onnx`,
      path.join(tmpLink, 'linked.onnx'),
    );
    await fc.assert(
      fc.asyncProperty(spellings, fc.boolean(), async (spelling, asDataset) => {
        const reply = asDataset
          ? await gateway.graphql(QUANTIZE, quantizeInput(spelling, 'auto'))
          : await gateway.graphql(REGISTER, registerInput('outside', spelling));
        expect(reply.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
        expect(reply.errors?.[0].message).toMatch(/outside the directories the gateway reads from .*LOCAL_PATH_ROOTS/);
      }),
      { numRuns: 20 },
    );
    const models = await gateway.graphql<{ models: unknown[] }>('{ models { name } }');
    expect(models.data?.models).toEqual([{ name: 'tiny' }]);
    fs.rmSync(tmpLink, { recursive: true, force: true });
  });
});

function peakRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

function startGatewayProcess(env: Record<string, string>): { child: ChildProcess; ready: Promise<string> } {
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: { ...process.env, NODE_ENV: 'production', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /gateway ready at (http:\/\/\S+) /.exec(output);
      if (match) resolve(match[1]);
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before it was ready:\n${output}`)));
  });
  return { child, ready };
}

function pngDeclaring(width: number, height: number, data: Buffer, interlaced: boolean): Buffer {
  const chunk = (type: string, payload: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(payload.length);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), payload])) >>> 0);
    return Buffer.concat([head, payload, crc]);
  };
  const ihdr = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, interlaced ? 1 : 0]);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(data, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

describe('special files and decompression bombs leave the gateway process bounded', () => {
  let gateway: { child: ChildProcess; ready: Promise<string> };
  let url: string;
  let dir: string;
  let files: ReturnType<typeof specialFiles>;

  beforeAll(async () => {
    if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'special-'));
    files = specialFiles(dir);
    // /dev and /proc are roots here on purpose: the file checks, not the roots, must stop them.
    gateway = startGatewayProcess({
      DATA_DIR: path.join(dir, 'data'),
      LOCAL_PATH_ROOTS: [dir, '/dev', '/proc', FIXTURES, path.join(ROOT, 'deploy', 'demo')].join(path.delimiter),
      FIMAQ_EMBEDDED_WORKERS: '1',
    });
    url = await gateway.ready;
    expect((await graphql(url, REGISTER, registerInput('tiny', path.join(FIXTURES, 'tiny-classifier.onnx')))).errors).toBeUndefined();
  });
  afterAll(async () => {
    if (gateway?.child.exitCode === null) {
      const exited = new Promise((resolve) => gateway.child.once('exit', resolve));
      gateway.child.kill('SIGTERM');
      await exited;
    }
    files?.socket.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test(`every special path and image bomb is refused, and peak RSS grows by less than ${PEAK_RSS_GROWTH_CAP_MB} MB`, async () => {
    const classify = (body: Buffer) =>
      fetch(`${url}/v2/models/tiny/classify`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'image/png' }, body: new Uint8Array(body) });
    // Warm every path once with valid work, so the baseline holds what serving needs anyway.
    const fine = pngDeclaring(28, 28, Buffer.alloc(28 * 29), false);
    expect((await classify(fine)).status).toBe(200);
    const tooFew = await graphql(url, QUANTIZE, { input: { ...quantizeInput(path.join(ROOT, 'deploy', 'demo', 'data', 'fashion-mnist'), 'idx').input, calibSize: 5000 } });
    expect(tooFew.errors?.[0].message).toMatch(/fewer than the 5000/);
    const baseline = peakRssMb(gateway.child.pid!);

    const specialPaths = fc.constantFrom(
      '/dev/zero', '/dev/urandom', '/dev/null', '/dev/full', '/dev/stdin', '/proc/self/fd/0', '/proc/kcore',
      '/proc/self/environ', '/proc/self/maps', '/proc/self/mem', '/proc', '/dev',
      files.fifo, files.socketPath, files.linkToZero, files.folderWithFifo,
    );
    await fc.assert(
      fc.asyncProperty(specialPaths, fc.constantFrom('model', 'auto', 'npy', 'idx', 'image-folder'), async (special, use) => {
        const started = Date.now();
        const reply = use === 'model' ? await graphql(url, REGISTER, registerInput('special', special)) : await graphql(url, QUANTIZE, quantizeInput(special, use));
        expect(reply.errors).toHaveLength(1);
        expect(['BAD_USER_INPUT', 'INVALID_MODEL', 'PAYLOAD_TOO_LARGE']).toContain(reply.errors![0].extensions?.code);
        expect(reply.errors![0].message).not.toMatch(/internal error/);
        expect(Date.now() - started).toBeLessThan(10_000);
      }),
      { numRuns: 60, examples: [['/dev/zero', 'npy'], ['/dev/zero', 'model'], [files.fifo, 'npy'], ['/proc/kcore', 'model'], ['/proc/self/environ', 'npy']] },
    );

    const sides = fc.integer({ min: 1, max: 65535 });
    await fc.assert(
      fc.asyncProperty(sides, sides, fc.boolean(), fc.integer({ min: 0, max: 32 }), async (width, height, interlaced, megabytes) => {
        // Zeros deflate about 1000:1: up to 32 MB of pixel data in a body of ~32 KB.
        const response = await classify(pngDeclaring(width, height, Buffer.alloc(megabytes * 1024 * 1024 + 1), interlaced));
        expect([400, 413]).toContain(response.status);
        expect(await response.json()).toEqual({ error: expect.any(String) });
      }),
      { numRuns: 40, examples: [[30000, 30000, false, 32], [28, 28, true, 32], [4096, 4096, false, 16]] },
    );

    const growth = peakRssMb(gateway.child.pid!) - baseline;
    console.log(`special files and bombs: peak RSS ${baseline.toFixed(0)} MB before, +${growth.toFixed(1)} MB after (cap ${PEAK_RSS_GROWTH_CAP_MB} MB)`);
    expect(growth).toBeLessThan(PEAK_RSS_GROWTH_CAP_MB);
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(200);
    expect((await classify(fine)).status).toBe(200);
  });
});
