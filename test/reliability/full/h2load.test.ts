/**
 * HTTP/2 under h2load (Debian's nghttp2-client) through a SIGTERM: back-to-back
 * streams, 10 at a time on each of 8 connections, DRAIN_DELAY=1s. With the
 * two-step GOAWAY (the shutdown notice at the quit event, the final GOAWAY one
 * round trip later, RFC 9113 §6.8), every stream that reaches the server is
 * answered and none is reset: the server's own count of the streams it
 * received equals h2load's count of those that succeeded.
 *
 * h2load may still count streams as errored: those nghttp2 had queued but not
 * yet sent when the notice arrived (a client that has received any GOAWAY
 * sends no new stream: START_STREAM_NOT_ALLOWED) — up to its 10 per
 * connection, in some runs; they never reached the server, and a client may
 * send them elsewhere. (Before the notice, with one GOAWAY when the listener
 * closed: 0, 30 and 60 errored in three runs here; 41–200 in the runs of the
 * issue.)
 *
 * With one stream at a time (`-m 1`) h2load may count up to one request per
 * connection as errored at a GOAWAY, the textbook two-step of plain Node
 * included; the server resets none of them (its own accounting of a request
 * it then cannot submit).
 *
 * Full suite only (`npm run test:reliability`, whose setup installs h2load):
 * without h2load this fails, it is not skipped.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { start } from "../../e2e/harness.ts"
import { record } from "../support/results.ts"

const TRIALS = 5
const fixture = fileURLToPath(new URL("../fixtures/h2c.ts", import.meta.url))

interface H2load {
  readonly total: number
  readonly succeeded: number
  readonly failed: number
  readonly errored: number
}

const h2load = (port: number, seconds: number): Promise<H2load> =>
  new Promise((resolve, reject) => {
    execFile("h2load", ["-c", "8", "-m", "10", "-n", "100000000", "-D", String(seconds), `http://127.0.0.1:${port}/`], (error, stdout) => {
      const line = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(stdout)
      if (line === null) return reject(error ?? new Error(`h2load said: ${stdout}`))
      const [, total, succeeded, failed, errored] = line.map(Number) as [number, number, number, number, number]
      resolve({ total, succeeded, failed, errored })
    })
  })

/** One trial: h2load's counts, and the server's own (streams received, answered, reset). */
type Run = H2load & {
  readonly code: number | null
  readonly elapsedMs: number
  readonly received: number
  readonly answered: number
  readonly reset: number
}

describe("HTTP/2 under h2load", () => {
  it(`${TRIALS} SIGTERMs under back-to-back streams, DRAIN_DELAY=1s: every stream that reached the server answered, none reset`, async () => {
    const runs: Array<Run> = []
    for (let i = 0; i < TRIALS; i++) {
      const child = start(fixture, { DRAIN_DELAY: "1s", SHUTDOWN_TIMEOUT: "5s" })
      try {
        await child.waitFor(/PORT \d+/)
        const port = Number(/PORT (\d+)/.exec(child.output())![1])
        const load = h2load(port, 4)
        await sleep(1_000)
        const sent = child.signal("SIGTERM")
        const { at, code } = await child.exited()
        const result = await load
        assert.strictEqual(code, 0, child.output())
        const [, received, answered, reset] = /STREAMS received=(\d+) answered=(\d+) reset=(\d+)/.exec(child.output())!.map(Number)
        runs.push({ ...result, code, elapsedMs: at - sent, received: received!, answered: answered!, reset: reset! })
      } finally {
        child.process.kill("SIGKILL")
      }
    }
    const sum = (pick: (run: Run) => number) => runs.reduce((n, run) => n + pick(run), 0)
    record({
      family: "HTTP/2 under h2load",
      scenario: "SIGTERM under back-to-back h2c streams (8 connections × 10 streams), DRAIN_DELAY=1s",
      trials: runs.length,
      requests: sum((run) => run.total),
      failures: sum((run) => run.received - run.answered + run.reset),
      signalToExitMs: runs.map((run) => run.elapsedMs),
      exitCodes: runs.map((run) => run.code),
      notes: [
        `h2load (nghttp2 1.52): ${sum((run) => run.succeeded)} streams succeeded, ${sum((run) => run.errored)} errored, ` +
        `${sum((run) => run.failed)} failed in all; per run errored: ${runs.map((run) => run.errored).join(", ")}`,
        `the server received ${sum((run) => run.received)} streams, answered ${sum((run) => run.answered)}, reset ` +
        `${sum((run) => run.reset)}: the errored ones never reached it (queued by nghttp2, unsent at the notice)`,
        "h2load stops opening streams on a connection at the shutdown notice and does not reconnect: a run's total ends there"
      ]
    })
    const detail = runs.map((run) => JSON.stringify(run)).join("\n")
    for (const run of runs) {
      assert.strictEqual(run.reset, 0, detail)
      assert.strictEqual(run.answered, run.received, `every stream that reached the server was answered\n${detail}`)
      assert.strictEqual(run.succeeded, run.received, `what h2load counts as succeeded is what the server received\n${detail}`)
    }
  }, 120_000)
})
