import { fileURLToPath } from "node:url"
import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  resolve: {
    // The README's snippets import the package by name, as users do.
    alias: {
      "effect-graceful/Grpc": fileURLToPath(new URL("./src/Grpc.ts", import.meta.url)),
      "effect-graceful/Amqp": fileURLToPath(new URL("./src/Amqp.ts", import.meta.url)),
      "effect-graceful/BullMQ": fileURLToPath(new URL("./src/BullMQ.ts", import.meta.url)),
      "effect-graceful/Nats": fileURLToPath(new URL("./src/Nats.ts", import.meta.url)),
      "effect-graceful": fileURLToPath(new URL("./src/index.ts", import.meta.url))
    }
  },
  test: {
    include: ["test/**/*.test.ts", "examples/readme/*.test.ts"],
    // The reliability scenarios that need more than Node and loopback (HAProxy)
    // run only in the full suite: npm run test:reliability.
    exclude: [...configDefaults.exclude, "test/reliability/full/**"],
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
