import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs keeps one global engine per process; files run in separate forks so backends never mix.
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
