import path from 'node:path';
import { loadPlugins, PluginLoadError } from '../../gateway/plugins/plugin-loader';
import { lifecycle } from './support/greeting-plugin';
import { startTestGateway } from '../support/gateway-harness';

const PLUGIN_PATH = path.resolve(__dirname, 'support', 'greeting-plugin');

describe('plugin API', () => {
  test('a configured plugin adds a query and a route, and is started and stopped', async () => {
    lifecycle.length = 0;
    const gateway = await startTestGateway({ plugins: loadPlugins([PLUGIN_PATH]) });
    try {
      const result = await gateway.graphql<{ greeting: string }>(`{ greeting(name: "ada") }`);
      expect(result.data).toEqual({ greeting: 'hello ada, 0 model(s) registered' });
      const anonymous = await gateway.graphql(`{ greeting(name: "ada") }`, {}, null);
      expect(anonymous.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');

      const route = await fetch(`${gateway.url}/greeting`);
      expect(await route.json()).toEqual({ greeting: 'hello from a plugin route' });
      expect(lifecycle).toEqual(['start:sqlite']);
    } finally {
      await gateway.stop();
    }
    expect(lifecycle).toEqual(['start:sqlite', 'stop']);
  });

  test('plugins are chosen by configuration (GATEWAY_PLUGINS)', async () => {
    const gateway = await startTestGateway({ plugins: undefined, env: { GATEWAY_PLUGINS: PLUGIN_PATH } });
    try {
      expect((await gateway.graphql(`{ greeting(name: "x") }`)).errors).toBeUndefined();
    } finally {
      await gateway.stop();
    }
  });

  test('unknown, empty and duplicate plugin specifiers fail clearly', () => {
    expect(() => loadPlugins(['./no/such/plugin'])).toThrow(PluginLoadError);
    expect(() => loadPlugins(['./no/such/plugin'])).toThrow(/cannot load plugin "\.\/no\/such\/plugin"/);
    expect(() => loadPlugins([path.resolve(__dirname, '..', 'support', 'services')])).toThrow(/exports no plugin/);
    expect(() => loadPlugins([PLUGIN_PATH, PLUGIN_PATH])).toThrow(/configured twice/);
  });
});
