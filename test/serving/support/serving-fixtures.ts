import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';
import { ADMIN_TOKEN, FIXTURES, uploadArtifact, type TestGateway } from '../../support/gateway-harness';

export const LABELS = ['tshirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot'];
export const PIXELS = 28 * 28;

/** The fixtures' preprocessing: pixels mapped to [-1, 1]. */
const FIXTURE_PREPROCESSING = { height: 28, width: 28, channels: 1, mean: [0.5], std: [0.5] };

/** Registers a fixture (a name in the fixtures, or a path) as a model through GraphQL; returns the model's first variant id. */
export async function registerModel(gateway: TestGateway, name: string, file: string, task: 'CLASSIFICATION' | 'RETRIEVAL' = 'CLASSIFICATION', preprocessing = FIXTURE_PREPROCESSING): Promise<string> {
  const result = await gateway.graphql<{ registerModel: { variant: { id: string } } }>(
    `mutation($input: RegisterModelInput!) { registerModel(input: $input) { variant { id } } }`,
    {
      input: {
        name,
        task,
        labels: task === 'CLASSIFICATION' ? LABELS : undefined,
        preprocessing,
        localPath: path.resolve(FIXTURES, file),
      },
    },
  );
  if (result.errors) throw new Error(result.errors[0].message);
  return result.data!.registerModel.variant.id;
}

/** Uploads a fixture and adds it as a variant through the addVariant mutation. */
export async function addVariant(gateway: TestGateway, model: string, tag: string, file: string): Promise<string> {
  return addVariantBytes(gateway, model, tag, fs.readFileSync(path.join(FIXTURES, file)));
}

/** Uploads ONNX bytes and adds them as a variant of the model; returns its id. */
export async function addVariantBytes(gateway: TestGateway, model: string, tag: string, bytes: Buffer): Promise<string> {
  const upload = await uploadArtifact(gateway, bytes);
  const { sha256 } = (await upload.json()) as { sha256: string };
  const result = await gateway.graphql<{ addVariant: { id: string } }>(
    `mutation($input: AddVariantInput!) { addVariant(input: $input) { id } }`,
    { input: { model, tag, artifactSha256: sha256, precision: 'W4A4', method: 'hand-made' } },
  );
  if (result.errors) throw new Error(result.errors[0].message);
  return result.data!.addVariant.id;
}

export async function setPolicy(gateway: TestGateway, model: string, policy: Record<string, unknown>): Promise<{ data?: { setTrafficPolicy: { version: number } }; errors?: Array<{ message: string; extensions?: { code?: string } }> }> {
  return gateway.graphql(`mutation($model: String!, $policy: TrafficPolicyInput!) { setTrafficPolicy(model: $model, policy: $policy) { version } }`, { model, policy });
}

/** A deterministic 28x28 gray test image; `seed` varies its content. */
export function imagePixels(seed: number): Uint8Array {
  const pixels = new Uint8Array(PIXELS);
  for (let i = 0; i < PIXELS; i++) pixels[i] = (Math.imul(i + 1, 2654435761 + seed * 40503) >>> 24) & 0xff;
  return pixels;
}

export function png(pixels: Uint8Array, width = 28, height = 28): Buffer {
  const image = new PNG({ width, height, colorType: 0 });
  for (let p = 0; p < width * height; p++) {
    const v = pixels[p % pixels.length];
    image.data[4 * p] = v;
    image.data[4 * p + 1] = v;
    image.data[4 * p + 2] = v;
    image.data[4 * p + 3] = 255;
  }
  return PNG.sync.write(image, { colorType: 0 });
}

/** The tensor the gateway makes of `png(pixels)`: (p / 255 - 0.5) / 0.5. */
export function tensorValues(pixels: Uint8Array): number[] {
  return Array.from(pixels, (p) => (p / 255 - 0.5) / 0.5);
}

export function inferenceBody(rows: number[][], name = 'input'): Record<string, unknown> {
  return { inputs: [{ name, datatype: 'FP32', shape: [rows.length, 1, 28, 28], data: rows.flat() }] };
}

export interface Reply {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
  raw: Buffer;
}

/** POSTs to a data-plane path with the admin token; parses JSON answers. */
export async function post(gateway: TestGateway, urlPath: string, body: Buffer | string | Record<string, unknown>, headers: Record<string, string> = {}): Promise<Reply> {
  const payload = Buffer.isBuffer(body) ? new Uint8Array(body) : typeof body === 'string' ? body : JSON.stringify(body);
  const response = await fetch(`${gateway.url}${urlPath}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...headers },
    body: payload,
  });
  const raw = Buffer.from(await response.arrayBuffer());
  let json: Record<string, unknown> = {};
  if ((response.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(raw.toString('utf8'));
  return { status: response.status, headers: response.headers, json, raw };
}

export async function get(gateway: TestGateway, urlPath: string, token: string | null = ADMIN_TOKEN): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const response = await fetch(`${gateway.url}${urlPath}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    json = {};
  }
  return { status: response.status, json, text };
}

/** Polls until `check` passes (shadows and metrics settle after the answer). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
