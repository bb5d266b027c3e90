// Lets a child process run the TypeScript sources directly (`node -r ./test/support/register-ts.js x.ts`),
// compiled by swc with the same options as jest, so tests exercise the code under test rather than dist/.
const fs = require('node:fs');
const { transformSync } = require('@swc/core');

require('reflect-metadata');

require.extensions['.ts'] = (module, filename) => {
  const { code } = transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    sourceMaps: 'inline',
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
