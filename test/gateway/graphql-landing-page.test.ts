import { startTestGateway, type TestGateway } from '../support/gateway-harness';

/** A browser opening /graphql gets a page that works offline: nothing loaded from elsewhere. */
describe('GET /graphql in a browser', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway();
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  test('answers a self-contained page linking the dashboard and the SDL', async () => {
    const response = await fetch(`${gateway.url}/graphql`, { headers: { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toContain('href="/dashboard"');
    expect(html).toContain('href="/graphql/schema.graphql"');
    expect(html).toMatch(/curl .*\/graphql/s);
    // No CDN, no script, no address of another host.
    expect(html).not.toMatch(/https?:|\/\/[a-z]|<script|<link/i);
  });

  test('the SDL link answers the schema, without a token', async () => {
    const response = await fetch(`${gateway.url}/graphql/schema.graphql`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const sdl = await response.text();
    expect(sdl).toMatch(/type Query \{/);
    expect(sdl).toContain('setModelLabels(');
  });

  test('queries still work on the same path', async () => {
    const reply = await gateway.graphql<{ models: unknown[] }>('{ models { name } }');
    expect(reply).toEqual({ status: 200, data: { models: [] } });
  });
});
