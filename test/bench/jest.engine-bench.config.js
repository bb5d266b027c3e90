/** Engine benchmarks: `npm run bench:engine`. Kept out of `npm test` (they take minutes). */
const base = require('../../jest.config.js');

module.exports = {
  ...base,
  rootDir: '../..',
  roots: ['<rootDir>/test/bench'],
  testMatch: ['**/engine*.bench.ts'],
  testTimeout: 3600000,
  maxWorkers: 1,
};
