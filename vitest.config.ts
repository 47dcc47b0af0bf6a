import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: {
    // The README's snippets import the package by name, as users do.
    alias: {
      "effect-graceful/Grpc": fileURLToPath(new URL("./src/Grpc.ts", import.meta.url)),
      "effect-graceful": fileURLToPath(new URL("./src/index.ts", import.meta.url))
    }
  },
  test: {
    include: ["test/**/*.test.ts", "examples/readme/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
