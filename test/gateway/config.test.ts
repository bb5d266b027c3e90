import path from 'node:path';
import { ConfigError, DEFAULT_LOCAL_PATH_ROOTS, DEFAULT_PLUGINS, loadConfig } from '../../gateway/config/config';

describe('configuration', () => {
  test('no variables give the embedded default on port 8080 with auth on', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      dataDir: path.resolve('data'),
      databaseUrl: undefined,
      natsUrl: undefined,
      authEnabled: true,
      plugins: DEFAULT_PLUGINS,
      logLevel: 'info',
      localPathRoots: [path.resolve('data'), ...DEFAULT_LOCAL_PATH_ROOTS],
    });
    expect(config.serving.maxImagePixels).toBe(4096 * 4096);
  });

  test('LOCAL_PATH_ROOTS replaces the default roots; DATA_DIR stays one', () => {
    const config = loadConfig({ DATA_DIR: '/srv/gw', LOCAL_PATH_ROOTS: '/datasets: relative/models ', MAX_IMAGE_PIXELS: '1000000' });
    expect(config.localPathRoots).toEqual(['/srv/gw', '/datasets', path.resolve('relative/models')]);
    expect(config.serving.maxImagePixels).toBe(1000000);
  });

  test('variables are parsed and typed', () => {
    const config = loadConfig({
      PORT: '9000',
      DATABASE_URL: 'postgres://u:p@db:5432/gw',
      NATS_URL: 'nats://nats:4222',
      MAX_UPLOAD_BYTES: '2mb',
      GATEWAY_AUTH_DISABLED: 'true',
      GATEWAY_PLUGINS: ' ./a , b ',
    });
    expect(config).toMatchObject({
      port: 9000,
      databaseUrl: 'postgres://u:p@db:5432/gw',
      natsUrl: 'nats://nats:4222',
      maxUploadBytes: 2 * 1024 * 1024,
      authEnabled: false,
      plugins: ['./a', 'b'],
    });
  });

  test.each([
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ PORT: '70000' }, /PORT must be an integer in 0..65535/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must use postgres: or postgresql:/],
    [{ DATABASE_URL: 'not a url' }, /DATABASE_URL is not a URL/],
    [{ NATS_URL: 'http://x' }, /NATS_URL must use/],
    [{ MAX_UPLOAD_BYTES: 'lots' }, /MAX_UPLOAD_BYTES must be a size/],
    [{ GATEWAY_AUTH_DISABLED: 'maybe' }, /GATEWAY_AUTH_DISABLED must be true or false/],
    [{ GATEWAY_ADMIN_TOKEN: 'short' }, /at least 16 characters/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
    [{ MAX_IMAGE_PIXELS: '0' }, /MAX_IMAGE_PIXELS must be an integer in 1\.\./],
  ])('%o is refused with a message naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
