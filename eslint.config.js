const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'deploy/**/*.py', 'coverage/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  { files: ['**/*.js'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
  // The arrows between layers (README, Architecture). Type-only imports count too.
  {
    files: ['plugins/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '(^|/)gateway/(?!plugin-surface$)', message: 'A plugin uses the gateway only through gateway/plugin-surface.' }],
      }],
    },
  },
  {
    files: ['workers/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '(^|/)(gateway|plugins)/', message: 'Workers import nothing of the control plane; the job contract is in workers/common/jobs/.' }],
      }],
    },
  },
  {
    files: ['workers/engine/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: '(^|/)(gateway|plugins)/', message: 'Workers import nothing of the control plane; the job contract is in workers/common/jobs/.' },
          { regex: '(^|/)fimaq(/|$)', message: 'The engine does not import FIMA-Q, which is built on it; methods are composed in workers/quantization.ts.' },
        ],
      }],
    },
  },
  {
    files: ['dashboard/**'],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: '(^|/)(gateway|plugins|workers|schema)/', message: 'The dashboard is browser code: it talks to the gateway over GraphQL only.' }],
      }],
    },
  },
);
