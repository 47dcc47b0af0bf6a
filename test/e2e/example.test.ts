/**
 * The README's first command starts examples/main.ts: it serves, and a real
 * SIGTERM drains it — the request in flight completes — and it exits 0.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { request } from "node:http"
import { fileURLToPath } from "node:url"
import { type Child, start } from "./harness.ts"

const main = fileURLToPath(new URL("../../examples/main.ts", import.meta.url))
let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

const get = (port: number, path: string) =>
  new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
    request({ port, path }, (res) => {
      let body = ""
      res.on("data", (chunk) => body += chunk)
      res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }))
    }).on("error", reject).end()
  })

describe("the example service", () => {
  it("serves, drains a request in flight on SIGTERM, prints the report and exits 0", async () => {
    child = start(main, { PORT: "0" })
    await child.waitFor(/http listening on port \d+/)
    const port = Number(/http listening on port (\d+)/.exec(child.output())![1])
    const inFlight = get(port, "/work?ms=500")
    await new Promise((resolve) => setTimeout(resolve, 100))
    child.signal("SIGTERM")
    const response = await inFlight
    assert.deepStrictEqual(response, { status: 200, connection: "close", body: "worked 500 ms\n" })
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.match(child.output(), /http\s+http\s+done\s+\d+\s+1 → 0/)
    assert.match(child.output(), /database\s+closer\s+done/)
  })
})
