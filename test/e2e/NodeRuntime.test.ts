/**
 * The project's design under Effect's own runner: every server, worker and
 * closer is a scoped layer whose finalizers run when `NodeRuntime.runMain`
 * interrupts the main fiber on a signal. With `Quit.layer`, the options hold
 * there as under `Main.runMain`: the quit event fires at the signal, readiness
 * answers 503 and requests are served through the drain delay, then the
 * listener closes; closers are bounded by the close deadline. Real SIGTERM to
 * a child process; the exit code (130) is NodeRuntime's.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { setTimeout as sleep } from "node:timers/promises"
import { connect, get } from "../support/http.ts"
import { type Child, fixture, start } from "./harness.ts"

let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

const port = (output: string) => Number(/READY port=(\d+)/.exec(output)![1])

describe("Quit.layer under NodeRuntime.runMain", () => {
  for (const [how, env] of [
    ["Quit.layer({ drainDelay: \"1 second\" })", { IN_CODE: "1" }],
    ["DRAIN_DELAY=1s from the environment and no options in code", { DRAIN_DELAY: "1s" }]
  ] as const) {
    it(`${how}: readiness 503 and requests served through the drain delay, then new connections refused`, async () => {
      child = start(fixture("nodeRuntime.ts"), env)
      await child.waitFor(/READY port=\d+/)
      const web = port(child.output())
      assert.deepInclude(await get(web, "/readyz"), { status: 200, body: "ready\n" })
      const sent = child.signal("SIGTERM")
      await child.waitFor(/FINALIZER/)
      await sleep(250)
      const readiness = await get(web, "/readyz")
      const served = await get(web, "/")
      await child.waitFor(/CLOSING/)
      const closingSeen = performance.now()
      const refused = await connect(web)
      const { code } = await child.exited()
      const output = child.output()
      assert.match(output, /FINALIZER fired=true phase=draining/, "the quit event fired at the signal")
      assert.deepInclude(readiness, { status: 503, body: "not ready\n" })
      assert.deepInclude(served, { status: 200, body: "ok" })
      assert.strictEqual(served.headers.connection, "close", "keep-alive ends from the quit event")
      assert.isAtLeast(closingSeen - sent, 1000, "the listener stayed open through the drain delay")
      assert.strictEqual(refused, "ECONNREFUSED")
      assert.strictEqual(code, 130, output)
    })
  }

  it("a hung closer is abandoned at the close timeout derived from SHUTDOWN_TIMEOUT; what only Main.runMain adds is said once at start", async () => {
    child = start(fixture("nodeRuntime.ts"), { HUNG: "1", SHUTDOWN_TIMEOUT: "3s" })
    await child.waitFor(/READY port=\d+/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.include(output, "broker (closer) did not close within 500ms; abandoned")
    const warning = "SHUTDOWN_TIMEOUT=3s: every drain and close of effect-graceful ends by the close deadline inside it, " +
      "but only Main.runMain exits the process at the shutdown deadline"
    assert.strictEqual(output.split(warning).length - 1, 1, output)
    assert.isBelow(output.indexOf(warning), output.indexOf("READY"), "at start")
    assert.isBelow(output.indexOf("CLOSING"), output.indexOf("broker (closer) did not close"), "the broker closes after the server")
    assert.strictEqual(code, 130, output)
  })
})
