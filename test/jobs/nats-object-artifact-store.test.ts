import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { connect } from '@nats-io/transport-node';
import { ArtifactNotFoundError, ArtifactTooLargeError } from '../../workers/common/artifacts/artifact-store';
import { NatsObjectArtifactStore } from '../../workers/common/artifacts/nats-object-artifact-store';
import { describeWithNats, NATS_TEST_URL } from '../support/services';
import { uniqueNamespace } from './support/jobs-harness';

describeWithNats('artifacts in the NATS Object Store', () => {
  let nc: NatsConnection;
  const bucketName = `${uniqueNamespace()}-artifacts`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'obj-store-'));
  let gatewaySide: NatsObjectArtifactStore;
  let workerSide: NatsObjectArtifactStore;

  beforeAll(async () => {
    nc = await connect({ servers: NATS_TEST_URL });
    const bucket = await new Objm(nc).create(bucketName);
    gatewaySide = new NatsObjectArtifactStore(bucket, path.join(tmp, 'gateway'));
    workerSide = new NatsObjectArtifactStore(bucket, path.join(tmp, 'worker'));
  });

  afterAll(async () => {
    await (await jetstreamManager(nc)).streams.delete(`OBJ_${bucketName}`);
    await nc.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('bytes stored on one side are read on the other, by their sha256, also as a local file', async () => {
    const bytes = Buffer.from('a model, more or less');
    const stored = await gatewaySide.put(Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]));
    expect(stored).toEqual({ sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length });
    expect(await workerSide.has(stored.sha256)).toBe(true);
    expect(await workerSide.read(stored.sha256)).toEqual(bytes);
    expect(fs.readFileSync(await workerSide.localPath(stored.sha256))).toEqual(bytes);
    await workerSide.delete(stored.sha256);
    expect(await gatewaySide.has(stored.sha256)).toBe(false);
    await expect(gatewaySide.read(stored.sha256)).rejects.toThrow(ArtifactNotFoundError);
  });

  test('two workers storing the same result at once both succeed and the object stays readable', async () => {
    const bytes = Buffer.alloc(400_000, 3);
    const [first, second] = await Promise.all([gatewaySide.put(bytes), workerSide.put(bytes)]);
    expect(second).toEqual(first);
    const [readA, readB] = await Promise.all([gatewaySide.read(first.sha256), workerSide.put(bytes).then(() => workerSide.read(first.sha256))]);
    expect(readA.equals(bytes) && readB.equals(bytes)).toBe(true);
  });

  test('a stream over the size limit stores nothing', async () => {
    await expect(gatewaySide.put(Readable.from([Buffer.alloc(10), Buffer.alloc(10)]), { maxBytes: 15 })).rejects.toThrow(ArtifactTooLargeError);
  });
});
