/**
 * Graceful HTTP servers under Main.runMain with a real SIGTERM: readiness
 * flips first and requests are still served through the drain delay; then the
 * listeners close, the requests in flight finish with `Connection: close`, and
 * the process exits 0 right after the last one.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { type Child, fixture, start } from "./harness.ts"
import { connect, get } from "../support/http.ts"

let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

const row = (output: string, name: string) =>
  output.split("\n").find((line) => line.trimStart().startsWith(`${name} `)) ?? ""

describe("Http under Main.runMain", () => {
  it("SIGTERM: readiness 503 and liveness 200 while requests are served through the drain delay; then in-flight requests finish with connection: close and the process exits 0 right after", async () => {
    child = start(fixture("http.ts"), { DRAIN_DELAY: "800ms" })
    await child.waitFor(/READY web=\d+ api=\d+/)
    const [, web, api] = /READY web=(\d+) api=(\d+)/.exec(child.output())!.map(Number) as [number, number, number]
    assert.deepInclude(await get(web, "/readyz"), { status: 200, body: "ready\n" })
    const webSlow = get(web, "/slow?ms=1300")
    const apiSlow = get(api, "/slow?ms=1300")
    await new Promise((resolve) => setTimeout(resolve, 100))
    child.signal("SIGTERM")
    await child.waitFor(/quit event \(SIGTERM\)/)
    const readiness = await get(web, "/readyz")
    const liveness = await get(web, "/livez")
    const ordinary = await get(web, "/quick")
    const apiOrdinary = await get(api, "/slow?ms=0")
    const [webReply, apiReply] = await Promise.all([webSlow, apiSlow])
    const refused = await connect(web)
    const { code } = await child.exited()
    const output = child.output()

    // Each probe is a new connection (no agent), accepted: the listeners had not closed yet, so the probes
    // ran inside the drain delay (after the quit event: readiness says 503).
    for (const probe of [readiness, liveness, ordinary, apiOrdinary]) {
      assert.isUndefined(probe.error, "the probes ran inside the drain delay")
    }
    assert.deepInclude(readiness, { status: 503, body: "not ready\n" })
    assert.deepInclude(liveness, { status: 200, body: "alive\n" })
    assert.deepInclude(ordinary, { status: 200, body: "web /quick" })
    assert.deepInclude(apiOrdinary, { status: 200, body: "api slow" })
    for (const reply of [webReply, apiReply]) {
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(reply.headers.connection, "close")
    }
    assert.strictEqual(refused, "ECONNREFUSED")
    assert.strictEqual(code, 0, output)
    // Right after the last response: the drains ended with it (`done` below, not `cut` at the drain timeout),
    // the shutdown before its deadline (`graceful`); runMain exits once the report is written.
    assert.include(output, "shutdown report: SIGTERM, graceful, exit 0", "exits right after the last response")
    assert.match(row(output, "web"), /http\s+done\s+\d+\s+1 → 0/)
    assert.match(row(output, "api"), /http\s+done\s+\d+\s+1 → 0/)
  })
})
