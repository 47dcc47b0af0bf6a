/**
 * The full reliability suite (`npm run test:reliability`): every scenario at
 * the sizes of issue 7, the HAProxy rolling restart included (test/reliability/full/),
 * files one at a time so that the timings are not those of a machine shared
 * with other test files; the figures go to test/reliability/results.md.
 * The reduced suite is part of `npm test` through the main vitest.config.ts.
 */
import { fileURLToPath } from "node:url"
import { configDefaults, defineConfig } from "vitest/config"
import base from "../../vitest.config.ts"

export default defineConfig({
  ...base,
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    ...base.test,
    include: ["test/reliability/**/*.test.ts"],
    exclude: configDefaults.exclude,
    env: { RELIABILITY: "full" },
    globalSetup: ["test/reliability/globalSetup.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 60_000
  }
})
