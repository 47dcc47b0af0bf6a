/**
 * A graceful gRPC server under Main.runMain, stopped by a real SIGTERM while a
 * real client's call is in flight.
 */
import * as grpc from "@grpc/grpc-js"
import { afterEach, assert, describe, it } from "@effect/vitest"
import { DemoClient } from "../support/grpcClient.ts"
import { type Child, fixture, start } from "./harness.ts"

const children: Array<Child> = []
const clients: Array<DemoClient> = []
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill("SIGKILL")
  for (const client of clients.splice(0)) client.close()
})

const serve = async (env: Record<string, string> = {}) => {
  const child = start(fixture("grpc.ts"), env)
  children.push(child)
  await child.waitFor(/READY \d+/)
  const port = /READY (\d+)/.exec(child.output())![1]!
  const client = new DemoClient(`127.0.0.1:${port}`)
  clients.push(client)
  return { child, client }
}

describe("Grpc under Main.runMain with real signals", () => {
  it("SIGTERM during a call: NOT_SERVING during the drain delay, the call ends OK, exit 0 right after it", async () => {
    const { child, client } = await serve({ DRAIN_DELAY: "300ms" })
    assert.strictEqual(await client.check(""), "SERVING")
    const call = client.unary("Wait", { ms: 800, tag: "in flight" })
    await new Promise((resolve) => setTimeout(resolve, 100))
    child.signal("SIGTERM")
    await child.waitFor(/quit event \(SIGTERM\)/)
    assert.strictEqual(await client.check(""), "NOT_SERVING")
    const done = await call.done
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(done.status.code, grpc.status.OK, output)
    assert.deepStrictEqual(done.messages, [{ tag: "in flight" }])
    assert.strictEqual(code, 0, output)
    assert.notInclude(output, "call interrupted")
    // Right after the last call: the drain ended with it (`done`, not `cut` at the drain timeout), the
    // shutdown before its deadline (`graceful`), and runMain exits once the report is written.
    assert.include(output, "shutdown report: SIGTERM, graceful, exit 0")
    assert.match(output.split("\n").find((line) => line.trimStart().startsWith("grpc ")) ?? "", /grpc\s+done\s+\d+\s+1 → 0\s*$/)
  })

  it("a call past the drain timeout is cut: the client sees CANCELLED or UNAVAILABLE, the report says cut", async () => {
    const { child, client } = await serve({ DRAIN_TIMEOUT: "300ms" })
    const call = client.unary("Wait", { ms: 30_000, tag: "long" })
    await new Promise((resolve) => setTimeout(resolve, 100))
    child.signal("SIGTERM")
    const done = await call.done
    const { code } = await child.exited()
    const output = child.output()
    // Not OK: cut before the call's 30 s natural end.
    assert.include([grpc.status.CANCELLED, grpc.status.UNAVAILABLE], done.status.code)
    assert.include(output, "call interrupted")
    assert.strictEqual(code, 0, output)
    // Cut at the drain deadline (300 ms), not abandoned later at the close deadline.
    assert.match(
      output.split("\n").find((line) => line.trimStart().startsWith("grpc ")) ?? "",
      /grpc\s+cut\s+\d+\s+1 → 0\s+1 cut at the drain deadline/
    )
  })
})
