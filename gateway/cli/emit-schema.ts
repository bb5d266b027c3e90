import 'reflect-metadata';
import fs from 'node:fs';
import path from 'node:path';
import { printSchema } from 'graphql';
import { DEFAULT_PLUGINS } from '../config/config';
import { buildGatewaySchema } from '../graphql/build-schema';
import { loadPlugins } from '../plugins/plugin-loader';

/** The repository root, whether running from source or from `dist/`. */
const REPO_ROOT = path.resolve(__dirname, '..', '..', ...(path.basename(path.resolve(__dirname, '..', '..')) === 'dist' ? ['..'] : []));
export const SCHEMA_FILE = path.join(REPO_ROOT, 'schema', 'schema.graphql');

const HEADER = '# Generated from the type-graphql classes by `npm run schema:emit`; do not edit.\n# Core schema plus the default plugins.\n\n';

/** The SDL of the core resolvers plus the plugins shipped by default. */
export async function printGatewaySchema(): Promise<string> {
  const schema = await buildGatewaySchema(loadPlugins(DEFAULT_PLUGINS));
  return `${HEADER}${printSchema(schema)}\n`;
}

if (require.main === module) {
  printGatewaySchema().then(
    (sdl) => {
      fs.writeFileSync(SCHEMA_FILE, sdl);
      process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`schema emit failed: ${(error as Error).message}\n`);
      process.exit(1);
    },
  );
}
