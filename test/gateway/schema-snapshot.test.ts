import fs from 'node:fs';
import { printGatewaySchema, SCHEMA_FILE } from '../../gateway/cli/emit-schema';

test('schema/schema.graphql matches the code (run `npm run schema:emit` after changing GraphQL types)', async () => {
  const current = await printGatewaySchema();
  expect(fs.readFileSync(SCHEMA_FILE, 'utf8')).toBe(current);
});
