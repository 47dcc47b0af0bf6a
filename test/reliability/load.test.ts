/**
 * SIGTERM under sustained load: the example service (examples/main.ts) with
 * 100 keep-alive HTTP connections (half on the Effect API, half on the Express
 * app) and 20 concurrent gRPC calls, each client sending its next request the
 * moment the last one ended, and jobs in its queue; SIGTERM after a second of
 * it. This is `npm run demo` (examples/demo.ts), repeated: 20 trials in the
 * full suite, 3 in `npm test`.
 *
 * The promise, in every trial: every request sent before the signal completes
 * successfully (0 failed), no job is lost or done twice, exit 0 before the
 * shutdown deadline (the report says `graceful`) with nothing cut. The time
 * from the signal to the exit is recorded, not asserted.
 */
import { assert, describe, it } from "@effect/vitest"
import { type DemoResult, defaults, runDemo } from "../../examples/demo.ts"
import { size } from "./support/mode.ts"
import { record, spread } from "./support/results.ts"

const TRIALS = size(3, 20)
const HTTP_CONNECTIONS = 100
const GRPC_CALLS = 20
const SHUTDOWN_TIMEOUT_MS = 2_000
const LIMIT_MS = SHUTDOWN_TIMEOUT_MS + 100

const trial = () =>
  runDemo({
    ...defaults,
    httpClients: HTTP_CONNECTIONS,
    grpcClients: GRPC_CALLS,
    jobs: 500,
    loadMillis: 1_000,
    maxWorkMs: 300,
    // The drain delay covers the requests sent before the signal; the drain timeout is never reached.
    env: { DRAIN_DELAY: "500ms", DRAIN_TIMEOUT: "1s", SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`, WORKERS: "4", JOB_MS: "10" },
    print: () => {}
  })

const assertTrial = (r: DemoResult) => {
  const context = JSON.stringify({ ...r, report: undefined }, null, 2) + "\n" + r.report
  assert.isAtLeast(r.connectionsAtSignal, HTTP_CONNECTIONS, "at least 100 keep-alive connections were open")
  assert.isAtLeast(r.inFlightAtSignal, HTTP_CONNECTIONS, "the clients had requests in flight at the signal")
  assert.isAbove(r.beforeSignalByKind.grpc.sent, GRPC_CALLS, "gRPC calls ran alongside")
  assert.deepStrictEqual(r.failuresBeforeSignal, [], context)
  assert.strictEqual(r.beforeSignal.failed, 0, context)
  assert.strictEqual(r.inFlightFinishedOk, r.inFlightAtSignal, context)
  assert.deepInclude(r.jobs, { lost: 0, doneTwice: 0, claimed: 0 }, context)
  assert.strictEqual(r.exitCode, 0, context)
  // `graceful`, not `deadline`: it ended before its shutdown deadline.
  assert.match(r.report, /shutdown report: SIGTERM, graceful, exit 0/)
  // Every row `done`: no drain reached its timeout (a row would be `cut`), no close was abandoned.
  const outcomes = reportOutcomes(r.report)
  assert.isNotEmpty(outcomes, context)
  assert.deepStrictEqual(outcomes.filter((outcome) => outcome !== "done"), [], context)
}

/** The outcome column of the text report: the rows after its header line, up to the first that is not indented. */
const reportOutcomes = (report: string): ReadonlyArray<string> => {
  const lines = report.split("\n")
  const header = lines.findIndex((line) => /^\s+name\s+kind\s+outcome\s/.test(line))
  if (header === -1) return []
  const at = lines[header]!.indexOf("outcome")
  const outcomes: Array<string> = []
  for (const line of lines.slice(header + 1)) {
    if (!/^\s+\S/.test(line)) break
    outcomes.push(line.slice(at).split(/\s{2}/)[0]!)
  }
  return outcomes
}

describe("SIGTERM under sustained load", () => {
  it(`${TRIALS} trials × (${HTTP_CONNECTIONS} keep-alive HTTP connections + ${GRPC_CALLS} gRPC calls): 0 failed among requests sent before the signal`, async () => {
    const results: Array<DemoResult> = []
    for (let i = 0; i < TRIALS; i++) {
      const result = await trial()
      results.push(result)
      assertTrial(result)
    }
    const sum = (f: (r: DemoResult) => number) => results.reduce((n, r) => n + f(r), 0)
    record({
      family: "SIGTERM under sustained load",
      scenario: `${HTTP_CONNECTIONS} keep-alive HTTP connections + ${GRPC_CALLS} gRPC calls, SIGTERM after 1 s`,
      trials: results.length,
      requests: sum((r) => r.beforeSignal.sent),
      failures: sum((r) => r.beforeSignal.failed),
      signalToExitMs: results.map((r) => r.signalToExitMs),
      limitMs: LIMIT_MS,
      exitCodes: results.map((r) => r.exitCode),
      notes: [
        `requests sent before the signal: ${sum((r) => r.beforeSignalByKind.http.sent)} HTTP + ${
          sum((r) => r.beforeSignalByKind.grpc.sent)
        } gRPC, ${sum((r) => r.beforeSignal.failed)} failed`,
        `in flight at the signal, per trial: ${spread(results.map((r) => r.inFlightAtSignal))} (min / median / max), ` +
        `all of them finished ok: ${sum((r) => r.inFlightFinishedOk)} of ${sum((r) => r.inFlightAtSignal)}`,
        `HTTP connections open at the signal, per trial: ${spread(results.map((r) => r.connectionsAtSignal))}`,
        `sent after the signal: ${sum((r) => r.afterSignal.ok)} ok (drain delay 500 ms), ${
          sum((r) => r.afterSignal.refused)
        } refused (listener closed), ${sum((r) => r.afterSignal.reset)} reset, ${
          sum((r) => r.afterSignal.failed - r.afterSignal.refused - r.afterSignal.reset)
        } other`,
        `jobs: ${sum((r) => r.jobs.enqueued)} enqueued, ${sum((r) => r.jobs.done)} done, ${
          sum((r) => r.jobs.lost)
        } lost, ${sum((r) => r.jobs.doneTwice)} done twice`,
        `readiness answered 503 within ${spread(results.flatMap((r) => r.readiness503After ?? []))} ms of the signal`
      ]
    })
  }, 600_000)
})
