import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import pino from 'pino';
import { loadConfig } from '../../gateway/config/config';
import { startGateway } from '../../gateway/gateway';
import type { GatewayPlugin } from '../../gateway/plugin-surface';
import { PluginLoadError } from '../../gateway/plugins/plugin-loader';
import { fimaqPlugin, waitFor } from '../jobs/support/jobs-harness';
import { describeWithNats, NATS_TEST_URL } from '../support/services';

/** The embedded fimaq workers this test process has started (children running workers/main). */
function workerChildren(): string[] {
  const lines = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' }).split('\n');
  return lines.filter((line) => line.includes(path.join('workers', 'main')));
}

/** NATS client sockets of this process that are still open. */
function natsSockets(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'TCPSocketWrap').length;
}

function start(plugins: GatewayPlugin[], env: Record<string, string> = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-lifecycle-'));
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, GATEWAY_PLUGINS: '', LOG_LEVEL: 'silent', ...env });
  const started = startGateway({ config, logger: pino({ level: 'silent' }), plugins });
  return { started, dispose: () => fs.rmSync(dataDir, { recursive: true, force: true }) };
}

describeWithNats('a plugin start that fails halfway', () => {
  test('closes what the failed plugin and the plugins before it opened', async () => {
    let nc: NatsConnection | undefined;
    let workersDuringStart: string[] = [];
    const failing: GatewayPlugin = {
      name: 'fails-after-connecting',
      async start(context) {
        const connection = await connect({ servers: NATS_TEST_URL });
        nc = connection;
        context.onStop(() => connection.close());
        workersDuringStart = workerChildren();
        throw new Error('the second step of start failed');
      },
    };
    const { started, dispose } = start([fimaqPlugin(), failing]);
    try {
      await expect(started).rejects.toThrow('the second step of start failed');
      expect(workersDuringStart.length).toBeGreaterThan(0);
      expect(nc?.isClosed()).toBe(true);
      expect(workerChildren()).toEqual([]);
    } finally {
      dispose();
    }
  });

  test('the fimaq plugin closes its NATS connection when setting up its streams fails', async () => {
    const before = natsSockets();
    // The namespace is checked when the streams are set up, after the connection is open.
    const { started, dispose } = start([fimaqPlugin({ config: { natsNamespace: 'not a namespace' } })], { NATS_URL: NATS_TEST_URL });
    try {
      await expect(started).rejects.toThrow(/NATS namespace "not a namespace"/);
      // A closed connection releases its socket handle a moment after close() resolves.
      await waitFor('the NATS socket to close', async () => (natsSockets() === before ? true : undefined), 10_000, 20);
    } finally {
      dispose();
    }
  });

  test('a plugin that starts fine is stopped, once, with the gateway', async () => {
    const stops: string[] = [];
    const plugin: GatewayPlugin = {
      name: 'nats-user',
      async start(context) {
        const connection = await connect({ servers: NATS_TEST_URL });
        context.onStop(async () => {
          stops.push('connection');
          await connection.close();
        });
        return {
          stop: () => {
            stops.push('plugin');
          },
        };
      },
    };
    const { started, dispose } = start([plugin]);
    try {
      const gateway = await started;
      await gateway.stop();
      await gateway.stop();
      expect(stops).toEqual(['plugin', 'connection']);
    } finally {
      dispose();
    }
  });
});

describe('plugin dependencies', () => {
  const plugin = (name: string, dependsOn: string[] = []): GatewayPlugin => ({ name, dependsOn, start: () => ({}) });

  test('a plugin configured before, or without, what it depends on is refused before anything starts', async () => {
    for (const plugins of [[plugin('b', ['a']), plugin('a')], [plugin('b', ['a'])]]) {
      const { started, dispose } = start(plugins);
      try {
        await expect(started).rejects.toThrow(PluginLoadError);
        await expect(started).rejects.toThrow('plugin "b" depends on "a", which must be configured before it');
      } finally {
        dispose();
      }
    }
  });

  test('a plugin after what it depends on starts', async () => {
    const { started, dispose } = start([plugin('a'), plugin('b', ['a'])]);
    try {
      await (await started).stop();
    } finally {
      dispose();
    }
  });
});
