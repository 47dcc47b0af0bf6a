/**
 * Bad input while draining: during the drain delay (the listeners still
 * accept) malformed HTTP requests, oversized headers and binary junk hit the
 * Effect API and the Express app, and junk (binary, HTTP/1.1, a valid preface
 * followed by junk) hits the gRPC port; after the listeners closed, the same
 * again. Meanwhile requests sent before the signal are still in flight.
 *
 * The promise: each bad connection is answered or dropped as Node and grpc-js
 * do it (400 or 431 with `Connection: close`; GOAWAY then close; after the
 * listeners closed, refused), nothing is logged as an error, the requests in
 * flight complete, and the drain ends when they do — exit 0 before the
 * shutdown deadline, never held up to the drain timeout. (The time from the
 * signal to the exit is recorded, not asserted.)
 */
import { assert, describe, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { setTimeout as sleep } from "node:timers/promises"
import { grpcWork, workClient } from "../../examples/demo/load.ts"
import type { Ports } from "../../examples/service/ports.ts"
import { connect, get } from "../support/http.ts"
import { lab } from "./support/lab.ts"
import { size } from "./support/mode.ts"
import { exchange } from "./support/raw.ts"
import { outcomes, shutdownReport, warnings } from "./support/report.ts"
import { record } from "./support/results.ts"

const { defer, service } = lab()
const TRIALS = size(1, 5)
/** Connections per kind of bad input and port, in each phase. */
const REPEAT = 10
const DRAIN_DELAY_MS = 800
const DRAIN_TIMEOUT_MS = 1_000
const SHUTDOWN_TIMEOUT_MS = 2_000
const LIMIT_MS = SHUTDOWN_TIMEOUT_MS + 100
const REQUEST_MS = 1_300

const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
const http = {
  "malformed request line": () => "GARBAGE\r\n\r\n",
  "malformed header": () => "GET /work HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n",
  "oversized headers (20 KiB)": () => `GET /work HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(20 * 1024)}\r\n\r\n`,
  "binary junk": () => randomBytes(256)
}
const grpc = {
  "binary junk": () => randomBytes(256),
  "an HTTP/1.1 request": () => "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
  "the HTTP/2 preface, then junk": () => Buffer.concat([Buffer.from(PREFACE), randomBytes(256)])
}
const EXPECTED_HTTP: Record<keyof typeof http, string> = {
  "malformed request line": "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n",
  "malformed header": "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n",
  "oversized headers (20 KiB)": "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n",
  "binary junk": "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"
}

/** The type of each HTTP/2 frame in `bytes` (4: SETTINGS, 7: GOAWAY). */
const frameTypes = (bytes: string): ReadonlyArray<number> => {
  const types: Array<number> = []
  for (let at = 0; at + 9 <= bytes.length;) {
    const length = (bytes.charCodeAt(at) << 16) | (bytes.charCodeAt(at + 1) << 8) | bytes.charCodeAt(at + 2)
    types.push(bytes.charCodeAt(at + 3))
    at += 9 + length
  }
  return types
}

/** Every kind of bad input, REPEAT times, at once; resolves with `label → how each connection ended`. */
const sendBadInput = async (ports: Ports) => {
  const sends = [
    ...Object.entries(http).flatMap(([label, bytes]) => [
      [`api: ${label}`, ports.api, bytes] as const,
      [`web: ${label}`, ports.web, bytes] as const
    ]),
    ...Object.entries(grpc).map(([label, bytes]) => [`grpc: ${label}`, ports.grpc, bytes] as const)
  ]
  const results = await Promise.all(sends.flatMap(([label, port, bytes]) =>
    Array.from({ length: REPEAT }, async () => ({ label, ...(await exchange(port, bytes())) }))
  ))
  return results
}

const trial = async () => {
  const child = service({
    DRAIN_DELAY: `${DRAIN_DELAY_MS}ms`,
    DRAIN_TIMEOUT: `${DRAIN_TIMEOUT_MS}ms`,
    SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`
  })
  const ports = await child.listening()
  const client = workClient(ports.grpc)
  defer(() => client.close())
  const inFlight = [
    get(ports.api, `/work?ms=${REQUEST_MS}`),
    get(ports.web, `/work?ms=${REQUEST_MS}`),
    grpcWork(client, REQUEST_MS)
  ] as const
  await sleep(100)
  const stopping = child.stop()
  await sleep(100)
  const duringDelay = await sendBadInput(ports)
  // The listeners close at the end of the drain delay; the requests in flight end about 400 ms later.
  while ((await Promise.all([connect(ports.api), connect(ports.web), connect(ports.grpc)])).some((r) => r !== "ECONNREFUSED")) {
    await sleep(10)
  }
  const afterClose = await sendBadInput(ports)
  const stopped = await stopping
  const output = child.output()

  for (const result of duringDelay) {
    const [port, label] = result.label.split(": ") as [string, string]
    if (port === "grpc") {
      assert.deepStrictEqual([result.ending, frameTypes(result.response).at(-1)], ["closed", 7], `${result.label}: GOAWAY, then closed`)
    } else {
      assert.deepStrictEqual(
        [result.ending, result.response],
        ["closed", EXPECTED_HTTP[label as keyof typeof http]],
        result.label
      )
    }
  }
  for (const result of afterClose) assert.strictEqual(result.ending, "refused", `${result.label} after the listeners closed`)

  const [api, web, rpc] = await Promise.all(inFlight)
  assert.isBelow(Math.max(...afterClose.map((result) => result.at)), api.at, "while the requests were still in flight")
  const failed = [api.status === 200, web.status === 200, rpc.outcome === "ok"].filter((ok) => !ok).length
  assert.deepStrictEqual([api.status, api.body], [200, `worked ${REQUEST_MS} ms\n`])
  assert.deepStrictEqual([web.status, web.body], [200, `worked ${REQUEST_MS} ms\n`])
  assert.deepStrictEqual(rpc, { outcome: "ok", detail: "OK" })

  assert.strictEqual(stopped.code, 0, output)
  assert.deepStrictEqual(warnings(output), [], "bad input is not an error of the service")
  const report = shutdownReport(output)
  assert.deepStrictEqual(outcomes(report), ["api: done", "grpc: done", "jobs db: done", "jobs lease: done", "jobs: done", "web: done"])
  // Not `deadline`: it ended before its shutdown deadline.
  assert.deepStrictEqual([report.ending, report.exitCode], ["graceful", 0], output)
  // Each server's request was in flight at the drain and ended `done`, not `cut`: the drain ended with
  // the requests, not at the drain timeout (which would have cut them).
  for (const name of ["api", "web", "grpc"]) {
    const row = report.rows.find((r) => r.name === name)
    assert.deepInclude(row, { outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0, detail: null }, output)
  }
  return { stopped, failed, badConnections: duringDelay.length + afterClose.length }
}

describe("bad input while draining", () => {
  it("malformed HTTP, oversized headers, junk on the gRPC port: answered or dropped; the drain completes on time", async () => {
    const runs = []
    for (let i = 0; i < TRIALS; i++) runs.push(await trial())
    record({
      family: "Bad input while draining",
      scenario: "malformed HTTP, oversized headers, junk on the gRPC port, during the drain delay and after the listeners closed",
      trials: runs.length,
      requests: runs.length * 3,
      failures: runs.reduce((n, run) => n + run.failed, 0),
      signalToExitMs: runs.map((run) => run.stopped.elapsedMs),
      limitMs: LIMIT_MS,
      exitCodes: runs.map((run) => run.stopped.code),
      notes: [
        `${runs.reduce((n, run) => n + run.badConnections, 0)} bad connections; during the drain delay HTTP got 400 ` +
        "(malformed request line, malformed header, binary junk) or 431 (20 KiB of headers) with `Connection: close`, " +
        "gRPC got GOAWAY and a close; after the listeners closed, all were refused; nothing logged as an error",
        `the requests in flight (${REQUEST_MS} ms: Effect API, Express, gRPC) all completed; exit at their end, ` +
        `before the drain timeout (${DRAIN_DELAY_MS} + ${DRAIN_TIMEOUT_MS} ms)`
      ]
    })
  }, 120_000)
})
