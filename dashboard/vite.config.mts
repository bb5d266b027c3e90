import path from 'node:path';
import { defineConfig } from 'vite';

// The dashboard is a static bundle the gateway serves at /dashboard; everything it needs is
// bundled (no CDN). JSX goes through Vite's own transform with React's automatic runtime.
export default defineConfig({
  root: import.meta.dirname,
  base: '/dashboard/',
  oxc: { jsx: { runtime: 'automatic' } },
  // `npm run dashboard:dev`: the dev server talks to a gateway on :8080.
  server: { proxy: { '/graphql': { target: 'http://localhost:8080', ws: true } } },
  build: {
    outDir: path.resolve(import.meta.dirname, '..', 'dist', 'dashboard'),
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
});
