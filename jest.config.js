/** @type {import('jest').Config} */
module.exports = {
  // onnxruntime-node needs the host's typed arrays inside the sandbox; see the file.
  testEnvironment: '<rootDir>/test/support/onnxruntime-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2022',
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  setupFiles: ['reflect-metadata'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  testTimeout: 60000,
  // Suites share one PostgreSQL server and one NATS server; two cores make more workers slower.
  maxWorkers: 2,
};
