/**
 * Fault injection, one scenario each, on the example service with a fault
 * beside it (fixtures/faults.ts): a hung closer (abandoned at its own timeout,
 * and past the shutdown timeout), a throwing closer, a job that never ends, a
 * unit that ignores interruption, a gRPC call past the drain timeout, a
 * slowloris client during the drain, SIGTERM during startup, SIGTERM twice.
 *
 * Each must end before its shutdown deadline (the report's ending is not
 * `deadline`, unless the scenario is about the deadline), with every other
 * resource of the report `done`, the culprit named (in the report and the
 * log), and the exit code the README documents. The time from the signal the
 * test sends to the child's exit is recorded, not asserted (speed and latency
 * targets live in bench/).
 */
import { assert, describe, it } from "@effect/vitest"
import { setTimeout as sleep } from "node:timers/promises"
import { readJobs } from "../../examples/demo.ts"
import { grpcWork, workClient } from "../../examples/demo/load.ts"
import type { Ports } from "../../examples/service/ports.ts"
import { DemoClient } from "../support/grpcClient.ts"
import { connect, get } from "../support/http.ts"
import { lab, type Service, type Stopped } from "./support/lab.ts"
import { size } from "./support/mode.ts"
import { slowloris } from "./support/raw.ts"
import { logLines, outcomes, shutdownReport, warnings } from "./support/report.ts"
import { record } from "./support/results.ts"

const { defer, service } = lab()
const TRIALS = size(1, 3)
const SHUTDOWN_TIMEOUT_MS = 2_000
const LIMIT_MS = SHUTDOWN_TIMEOUT_MS + 100
const timing = { SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`, DRAIN_TIMEOUT: "1s", CLOSE_TIMEOUT: "500ms" }
/** Every resource of the example service, as the report names them, done. */
const ALL_DONE = ["api: done", "grpc: done", "jobs db: done", "jobs lease: done", "jobs: done", "web: done"]

interface Expected {
  readonly exitCode: number
  /** The report's rows: the example's resources done, the culprit's outcome. */
  readonly rows: ReadonlyArray<string>
  /** How the report says the run ended; `graceful` unless the scenario is about the shutdown deadline. */
  readonly ending?: "graceful" | "deadline"
  /** It waited for something at least this long (a timeout that had to pass). */
  readonly atLeastMs?: number
}

/** The promises every fault scenario keeps: exit code, report, ending (before the shutdown deadline). */
const assertEnded = (child: Service, stopped: Stopped, expected: Expected) => {
  const output = child.output()
  const report = shutdownReport(output)
  assert.strictEqual(stopped.code, expected.exitCode, output)
  assert.strictEqual(report.exitCode, expected.exitCode)
  assert.deepStrictEqual(outcomes(report), [...expected.rows].sort(), output)
  // Not `deadline`: it ended before its own shutdown deadline.
  assert.strictEqual(report.ending, expected.ending ?? "graceful", output)
  if (expected.atLeastMs !== undefined) assert.isAtLeast(stopped.elapsedMs, expected.atLeastMs)
  return report
}

interface Trial {
  readonly stopped: Stopped
  /** Requests that had to complete despite the fault, if the scenario has any. */
  readonly requests?: { readonly sent: number; readonly failed: number }
  readonly note: string
}

/** Runs `trial` TRIALS times and records the figures of the scenario. */
const scenario = (name: string, trial: () => Promise<Trial>) =>
  it(name, async () => {
    const runs: Array<Trial> = []
    for (let i = 0; i < TRIALS; i++) runs.push(await trial())
    const total = (count: (run: Trial) => number | undefined) =>
      runs.some((run) => count(run) === undefined) ? undefined : runs.reduce((n, run) => n + count(run)!, 0)
    record({
      family: "Fault injection",
      scenario: name.split(":")[0]!,
      trials: runs.length,
      requests: total((run) => run.requests?.sent),
      failures: total((run) => run.requests?.failed),
      signalToExitMs: runs.map((run) => run.stopped.elapsedMs),
      limitMs: LIMIT_MS,
      exitCodes: runs.map((run) => run.stopped.code),
      notes: [runs[0]!.note]
    })
  }, 60_000)

/** The example's ports refuse connections: the servers were released. */
const assertPortsClosed = async (ports: Ports) =>
  assert.deepStrictEqual(
    await Promise.all([connect(ports.api), connect(ports.web), connect(ports.grpc)]),
    ["ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED"],
    "every server is closed while the fault still holds the process"
  )

describe("fault injection", () => {
  scenario("a hung closer: abandoned at its own timeout and named; everything else closes; exit 1", async () => {
    const child = service({ ...timing, FAULT_HUNG_CLOSER: "400ms" })
    const ports = await child.listening()
    const stopping = child.stop()
    await sleep(200)
    await assertPortsClosed(ports)
    const stopped = await stopping
    const report = assertEnded(child, stopped, { exitCode: 1, rows: [...ALL_DONE, "broker: timed out"], atLeastMs: 400 })
    assert.include(warnings(child.output()), "broker (closer) did not close within 400ms; abandoned")
    assert.strictEqual(report.ending, "graceful")
    return { stopped, note: "broker `timed out` (abandoned after 400ms); 200 ms after the signal, while it hung, every port already refused connections" }
  })

  scenario("a finalizer of the program's own hung past the shutdown timeout: exit 1 at the deadline, the report naming what it held", async () => {
    const child = service({ ...timing, FAULT_STUCK_FINALIZER: "1" })
    await child.listening()
    const stopped = await child.stop()
    const report = assertEnded(child, stopped, {
      exitCode: 1,
      rows: [...ALL_DONE, "broker: abandoned"],
      ending: "deadline",
      atLeastMs: SHUTDOWN_TIMEOUT_MS
    })
    assert.strictEqual(report.ending, "deadline")
    assert.include(
      warnings(child.output()),
      "shutdown timeout of 2s passed; exiting now; still open: broker (closer, not yet closing)"
    )
    return { stopped, note: "ending `deadline`; the log: still open: broker (closer, not yet closing)" }
  })

  scenario("a throwing closer: logged with its cause, the rest close; exit 1", async () => {
    const child = service({ ...timing, FAULT_FAILING_CLOSER: "1" })
    await child.listening()
    const stopped = await child.stop()
    // The failure held nothing up: no drain reached its timeout (that would make a row `cut`), no close was abandoned.
    const report = assertEnded(child, stopped, { exitCode: 1, rows: [...ALL_DONE, "cache: failed"] })
    assert.strictEqual(report.rows.find((row) => row.name === "cache")?.detail, "cache: connection reset while flushing")
    assert.include(warnings(child.output()), "cache (closer) failed to close")
    return { stopped, note: "cache `failed`, detail: cache: connection reset while flushing" }
  })

  scenario("a job that never ends: cut at the drain deadline, its claim released to pending; exit 0", async () => {
    const child = service({ ...timing, WORKERS: "2", JOB_MS: "600000" })
    const ports = await child.listening()
    await fetch(`http://127.0.0.1:${ports.api}/jobs?n=5`, { method: "POST" })
    while (readJobs(child.database, 5).claimed < 2) await sleep(20)
    const stopped = await child.stop()
    const report = assertEnded(child, stopped, {
      exitCode: 0,
      rows: [...ALL_DONE.filter((row) => row !== "jobs: done"), "jobs: cut"],
      atLeastMs: 1_000
    })
    const jobs = report.rows.find((row) => row.name === "jobs")
    assert.deepStrictEqual([jobs?.inFlightAtDrain, jobs?.inFlightAtEnd, jobs?.detail], [2, 0, "2 cut at the drain deadline"])
    assert.deepInclude(readJobs(child.database, 5), { pending: 5, claimed: 0, done: 0, lost: 0 }, "nothing lost")
    return { stopped, note: "jobs `cut` (2 → 0, 2 cut at the drain deadline); the 2 claims released: 5 pending, 0 lost" }
  })

  scenario("a unit that ignores interruption: abandoned at the close deadline (drain + close timeout); exit 1", async () => {
    const child = service({ ...timing, FAULT_STUCK_UNIT: "1" })
    await child.listening()
    const stopped = await child.stop()
    assertEnded(child, stopped, { exitCode: 1, rows: [...ALL_DONE, "stuck: timed out"], atLeastMs: 1_500 })
    assert.include(warnings(child.output()), "stuck (worker): cutting 1 in flight at the drain deadline")
    assert.include(warnings(child.output()), "stuck (worker) did not close by the close deadline; abandoned")
    return { stopped, note: "stuck `timed out` at the close deadline: drain timeout (1s) + close timeout (500ms)" }
  })

  scenario("a gRPC call past the drain deadline: cancelled at it, the others complete; exit 0", async () => {
    const child = service(timing)
    const ports = await child.listening()
    const client = workClient(ports.grpc)
    defer(() => client.close())
    const long = grpcWork(client, 60_000)
    const short = grpcWork(client, 300)
    await sleep(100)
    const stopped = await child.stop()
    const report = assertEnded(child, stopped, {
      exitCode: 0,
      rows: [...ALL_DONE.filter((row) => row !== "grpc: done"), "grpc: cut"],
      atLeastMs: 1_000
    })
    const completed = await short
    assert.deepStrictEqual(completed, { outcome: "ok", detail: "OK" })
    const cut = await long
    assert.notStrictEqual(cut.outcome, "ok")
    const row = report.rows.find((r) => r.name === "grpc")
    assert.deepStrictEqual([row?.inFlightAtDrain, row?.detail], [2, "1 cut at the drain deadline"])
    return {
      stopped,
      requests: { sent: 1, failed: completed.outcome === "ok" ? 0 : 1 },
      note: `grpc \`cut\` (1 cut); the client got ${cut.detail}; the 300 ms call completed OK`
    }
  })

  scenario("a slowloris client during the drain: does not hold it up; cut with the rest; exit 0", async () => {
    const child = service({ ...timing, DRAIN_DELAY: "300ms" })
    const ports = await child.listening()
    const before = [slowloris(ports.api, 50), slowloris(ports.web, 50)]
    const inFlight = get(ports.api, "/work?ms=600")
    await sleep(100)
    const stopping = child.stop()
    await sleep(100)
    // Opened during the drain delay, when the listeners still accept.
    const during = [slowloris(ports.api, 50), slowloris(ports.web, 50)]
    const stopped = await stopping
    // Had the slowloris been waited for, the drain would have lasted until the drain timeout (300 ms + 1 s)
    // and cut them: api and web would be `cut`, not `done`, with something still in flight at the end.
    const report = assertEnded(child, stopped, { exitCode: 0, rows: ALL_DONE })
    for (const name of ["api", "web"]) {
      assert.deepInclude(report.rows.find((row) => row.name === name), { outcome: "done", inFlightAtEnd: 0, detail: null })
    }
    const response = await inFlight
    assert.deepStrictEqual([response.status, response.headers.connection, response.body], [200, "close", "worked 600 ms\n"])
    const ends = await Promise.all([...before, ...during].map((client) => client.ended))
    for (const end of ends) {
      assert.strictEqual(end.response, "", "a request never finished gets no answer")
      assert.isAbove(end.at, stopped.sentAt + 300, "it was still open, sending, when the listeners closed")
    }
    for (const client of [...before, ...during]) assert.isAbove(client.sent(), 0)
    return {
      stopped,
      requests: { sent: 1, failed: response.status === 200 ? 0 : 1 },
      note: "4 slowloris connections (1 byte / 50 ms) closed at the end of the drain, unanswered; the 600 ms request completed"
    }
  })

  scenario("SIGTERM during startup: no drain delay, what was acquired is released; exit 0", async () => {
    const child = service({ ...timing, DRAIN_DELAY: "500ms", FAULT_SLOW_START: "30s" })
    const ports = await child.listening()
    await child.waitFor(/migrations running/)
    const readiness = await get(ports.api, "/readyz")
    const health = new DemoClient(`127.0.0.1:${ports.grpc}`)
    defer(() => health.close())
    assert.deepStrictEqual([readiness.status, await health.check("")], [503, "NOT_SERVING"], "not ready while starting")
    const stopped = await child.stop()
    assertEnded(child, stopped, { exitCode: 0, rows: [...ALL_DONE, "migrations: done"] })
    // The quit event's own log line: the listeners close at once, the 500ms drain delay skipped.
    const quitEvent = logLines(child.output()).find((line) => line.message.startsWith("quit event (SIGTERM)"))?.message
    assert.include(quitEvent, "quit event (SIGTERM): draining; listeners close in 0, ", child.output())
    assert.include(child.output(), "migrations closed")
    assert.notInclude(child.output(), "migrations done")
    return { stopped, note: "readiness 503 and gRPC NOT_SERVING while starting; the 500ms drain delay skipped" }
  })

  scenario("SIGTERM twice: exit 143 at once, naming what was still open", async () => {
    const child = service(timing)
    const ports = await child.listening()
    const inFlight = get(ports.api, "/work?ms=60000")
    await sleep(100)
    const first = child.signal("SIGTERM")
    await child.waitFor(/quit event \(SIGTERM\)/)
    await sleep(300)
    const stopped = await child.stop("SIGTERM")
    const elapsedMs = stopped.elapsedMs + stopped.sentAt - first
    const output = child.output()
    assert.strictEqual(stopped.code, 143, output)
    const report = shutdownReport(output)
    // `forced`, not `deadline` nor `graceful`: the second signal ended it before the shutdown deadline.
    assert.deepStrictEqual([report.ending, report.exitCode], ["forced", 143])
    // At once: before the drain deadline, which would have cut the request in flight (and logged it).
    assert.isFalse(warnings(output).some((message) => message.includes(": cutting ")), output)
    // The job queue's database waits for the API that enqueues into it.
    const stillOpen = "jobs db (closer, not yet closing); jobs lease (worker, not yet closing); api (http, closing, 1 in flight)"
    assert.include(warnings(output), `SIGTERM received again during shutdown; exiting now; still open: ${stillOpen}`)
    assert.deepStrictEqual(outcomes(report), [
      "api: abandoned",
      "grpc: done",
      "jobs db: abandoned",
      "jobs lease: abandoned",
      "jobs: done",
      "web: done"
    ])
    assert.isDefined((await inFlight).error, "the request in flight was cut by the exit")
    return {
      stopped: { ...stopped, elapsedMs },
      note: `exit ${Math.round(stopped.elapsedMs)} ms after the second SIGTERM; the log: still open: ${stillOpen}`
    }
  })
})
