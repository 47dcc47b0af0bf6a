/**
 * What a program loads at start: the package's index loads neither Effect's
 * HTTP server nor the Node platform's — only a layer of `Http.layer` does,
 * when it is built. Start-up time is what a rolling restart waits on.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

// Writes every module resolved to stderr, from before the program's first import.
const hooks = `
import { registerHooks } from "node:module"
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context)
    process.stderr.write("resolved " + resolved.url + "\\n")
    return resolved
  }
})
`

/** The modules `program` (an ES module's text, run from the project's root) resolves. */
const resolvedBy = (program: string): ReadonlyArray<string> => {
  const child = spawnSync(
    process.execPath,
    ["--import", `data:text/javascript,${encodeURIComponent(hooks)}`, "--input-type=module", "-e", program],
    { cwd: root, encoding: "utf8" }
  )
  assert.strictEqual(child.status, 0, child.stderr)
  return child.stderr.split("\n").filter((line) => line.startsWith("resolved ")).map((line) => line.slice(9))
}

// Effect's HTTP server and client (its Schema needs a few HTTP modules of
// its own: Headers, Cookies, UrlParams), OTLP, the Node platform.
const heavy = (urls: ReadonlyArray<string>) =>
  [...new Set(urls.filter((url) => /\/effect\/dist\/(http\/Http|observability\/)|@effect\/platform-node\//.test(url)))]

describe("start-up", () => {
  it("importing the package loads neither Effect's HTTP server and client, OTLP, nor @effect/platform-node", () => {
    const urls = resolvedBy(`await import("./src/index.ts")`)
    assert.isAbove(urls.filter((url) => url.includes("/src/Http.ts")).length, 0, "Http is part of the index")
    assert.deepStrictEqual(heavy(urls), [])
  })

  it("building an Http.layer loads them", () => {
    const urls = resolvedBy(`
      import { Effect, Layer } from "effect"
      import { createServer } from "node:http"
      import { Http, Quit } from "./src/index.ts"
      const layer = Http.layer(() => createServer(), { port: 0, host: "127.0.0.1" }).pipe(Layer.provide(Quit.layer()))
      await Effect.runPromise(Effect.scoped(Layer.build(layer)))
    `)
    assert.isAbove(heavy(urls).length, 0)
  })
})
