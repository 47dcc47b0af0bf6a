/**
 * `npm run demo` at a smaller load: the example service under HTTP and gRPC
 * load with jobs queued gets SIGTERM mid-way; nothing accepted before the
 * signal fails, no job is lost or done twice, and it exits 0.
 */
import { assert, describe, it } from "@effect/vitest"
import { defaults, runDemo } from "../../examples/demo.ts"

describe("the demo scenario", () => {
  it("SIGTERM under load: 0 failed among requests sent before it, 0 jobs lost, exit 0", async () => {
    const lines: Array<string> = []
    const result = await runDemo({
      ...defaults,
      httpClients: 16,
      grpcClients: 4,
      jobs: 600,
      loadMillis: 1200,
      maxWorkMs: 300,
      env: { DRAIN_DELAY: "500ms", DRAIN_TIMEOUT: "5s", SHUTDOWN_TIMEOUT: "10s", WORKERS: "4", JOB_MS: "10" },
      print: (line) => lines.push(line)
    })
    const context = JSON.stringify(result, null, 2)
    assert.isAbove(result.beforeSignal.sent, 20, context)
    assert.strictEqual(result.beforeSignal.failed, 0, context)
    assert.isAbove(result.inFlightAtSignal, 0, context)
    assert.strictEqual(result.inFlightFinishedOk, result.inFlightAtSignal, context)
    assert.isAbove(result.afterSignal.ok, 0, "requests are still served through the drain delay")
    assert.isDefined(result.readiness503After, "readiness says 503 during the drain delay")
    assert.strictEqual(result.streamEnding, "OK, with a last tick")
    assert.strictEqual(result.jobs.enqueued, 600)
    assert.strictEqual(result.jobs.lost, 0, context)
    assert.strictEqual(result.jobs.doneTwice, 0, context)
    assert.strictEqual(result.jobs.claimed, 0, "claims not finished are released")
    assert.strictEqual(result.jobs.done + result.jobs.pending, 600, context)
    assert.isAbove(result.jobs.pending, 0, "the signal came while jobs were waiting")
    assert.strictEqual(result.exitCode, 0, result.report)
    assert.match(result.report, /shutdown report: SIGTERM, graceful, exit 0/)
  })
})
