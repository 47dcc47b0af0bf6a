/**
 * gRPC benchmarks, side by side in one run: the same service served by plain
 * grpc-js handlers and by `Grpc.serve` with Effect handlers.
 *
 *   npm run bench:grpc      # writes bench/grpc/results.md and results.json
 *
 * - Unary throughput: a client in this process keeps CONCURRENCY calls in
 *   flight against a server in a child process (a core each) for ROUND_MS.
 *   Rounds alternate between the servers; figures are medians. The server's
 *   CPU time per call is read from the child, so the ratio holds even when
 *   the client is the bottleneck.
 * - Shutdown latency: a child serves one call of IN_FLIGHT_MS; SIGTERM is sent
 *   SIGNAL_AFTER_MS into it; we time the call's end and the child's exit.
 */
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { fileURLToPath } from "node:url"
import { cpuMicros, median, type Server, startServer as startChild } from "../support/child.ts"

const ROUNDS = 15
const ROUND_MS = 1_000
const CONCURRENCY = 64
const IN_FLIGHT_MS = 300
const SIGNAL_AFTER_MS = 100
const SHUTDOWN_ROUNDS = 7

type Kind = "plain" | "effect"
const label: Record<Kind, string> = {
  plain: "plain grpc-js handlers",
  effect: "Grpc.serve, Effect handlers"
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const loaded = protoLoader.loadSync(here("./bench.proto"), { keepCase: true, defaults: true })["bench.Bench"]
if (loaded === undefined || "format" in loaded) throw new Error("bench.Bench missing")
const definition = loaded
const method = (name: string) => {
  const found = definition[name]
  if (found === undefined) throw new Error(`no method ${name}`)
  return found
}

const round1 = (n: number) => Math.round(n * 10) / 10
const startServer = (kind: Kind) => startChild(here("./server.ts"), [kind])
const cpuOf = (server: Server) => cpuMicros(server.child)

const client = (port: number) => new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())

const call = (c: grpc.Client, name: string, request: object) =>
  new Promise<grpc.StatusObject>((resolve) => {
    const m = method(name)
    const unary = c.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, () => {})
    unary.on("status", resolve)
  })

/** Keeps CONCURRENCY calls in flight for `ms`; returns calls/s and server CPU µs per call. */
const throughput = async (server: Server, c: grpc.Client, ms: number) => {
  const cpuBefore = await cpuOf(server)
  const until = performance.now() + ms
  let completed = 0
  let failed = 0
  const lane = async () => {
    while (performance.now() < until) {
      const status = await call(c, "Echo", { text: "hello" })
      if (status.code === grpc.status.OK) completed++
      else failed++
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, lane))
  const elapsed = performance.now() - t0
  const cpu = await cpuOf(server) - cpuBefore
  if (failed > 0) throw new Error(`${failed} calls failed`)
  return { callsPerSecond: (completed / elapsed) * 1000, cpuMicrosPerCall: cpu / completed }
}

const throughputBench = async () => {
  const servers = { plain: await startServer("plain"), effect: await startServer("effect") }
  const clients = { plain: client(servers.plain.port), effect: client(servers.effect.port) }
  const results: Record<Kind, Array<{ callsPerSecond: number; cpuMicrosPerCall: number }>> = { plain: [], effect: [] }
  for (const kind of ["plain", "effect"] as const) await throughput(servers[kind], clients[kind], 1_000) // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first, so drift in the machine's load hits both.
    const order: ReadonlyArray<Kind> = round % 2 === 0 ? ["plain", "effect"] : ["effect", "plain"]
    for (const kind of order) results[kind].push(await throughput(servers[kind], clients[kind], ROUND_MS))
  }
  for (const kind of ["plain", "effect"] as const) {
    clients[kind].close()
    servers[kind].child.kill("SIGKILL")
  }
  const summary = (kind: Kind) => ({
    callsPerSecond: Math.round(median(results[kind].map((r) => r.callsPerSecond))),
    cpuMicrosPerCall: round1(median(results[kind].map((r) => r.cpuMicrosPerCall))),
    rounds: results[kind].map((r) => Math.round(r.callsPerSecond))
  })
  // Each round ran both servers back to back: a ratio per round cancels the
  // machine's drift between rounds, and its median the outliers.
  const pairs = results.effect.map((effect, i) => ({ effect, plain: results.plain[i]! }))
  const ratio = (values: ReadonlyArray<number>) => Math.round(median(values) * 100) / 100
  return {
    plain: summary("plain"),
    effect: summary("effect"),
    throughputRatio: ratio(pairs.map((p) => p.effect.callsPerSecond / p.plain.callsPerSecond)),
    cpuRatio: ratio(pairs.map((p) => p.plain.cpuMicrosPerCall / p.effect.cpuMicrosPerCall))
  }
}

/** One shutdown: a call of IN_FLIGHT_MS in flight (or none), SIGTERM, exit. */
const shutdownRound = async (kind: Kind, inFlight: boolean) => {
  const server = await startServer(kind)
  const c = client(server.port)
  await call(c, "Echo", { text: "connect" })
  const pending = inFlight ? call(c, "Wait", { ms: IN_FLIGHT_MS }) : undefined
  if (inFlight) await new Promise((resolve) => setTimeout(resolve, SIGNAL_AFTER_MS))
  const signalled = performance.now()
  server.child.kill("SIGTERM")
  const status = pending === undefined ? undefined : await pending
  const callEnded = performance.now()
  const exitedAt = await server.exited
  c.close()
  if (status !== undefined && status.code !== grpc.status.OK) throw new Error(`${kind}: the call got ${status.code}`)
  return {
    exitMs: exitedAt - signalled,
    remainingMs: inFlight ? callEnded - signalled : 0,
    overMs: exitedAt - (inFlight ? callEnded : signalled)
  }
}

const shutdownBench = async (inFlight: boolean) => {
  const results: Record<Kind, Array<Awaited<ReturnType<typeof shutdownRound>>>> = { plain: [], effect: [] }
  for (let round = 0; round < SHUTDOWN_ROUNDS; round++) {
    const order: ReadonlyArray<Kind> = round % 2 === 0 ? ["plain", "effect"] : ["effect", "plain"]
    for (const kind of order) results[kind].push(await shutdownRound(kind, inFlight))
  }
  const summary = (kind: Kind) => ({
    exitMs: round1(median(results[kind].map((r) => r.exitMs))),
    remainingMs: round1(median(results[kind].map((r) => r.remainingMs))),
    overMs: round1(median(results[kind].map((r) => r.overMs))),
    worstOverMs: round1(Math.max(...results[kind].map((r) => r.overMs)))
  })
  return { plain: summary("plain"), effect: summary("effect") }
}

const main = async () => {
  const loadBefore = loadavg()[0]!
  const unary = await throughputBench()
  const idle = await shutdownBench(false)
  const busy = await shutdownBench(true)
  // Other work on the machine moves every figure; say how busy it was.
  const load = `load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`
  const machine = `Node ${process.version}, ${cpus()[0]?.model.trim() ?? "unknown CPU"} × ${cpus().length}, ${load}`
  const results = {
    machine,
    settings: { ROUNDS, ROUND_MS, CONCURRENCY, IN_FLIGHT_MS, SIGNAL_AFTER_MS, SHUTDOWN_ROUNDS },
    unary,
    shutdown: { idle, busy }
  }
  writeFileSync(here("./results.json"), JSON.stringify(results, null, 2) + "\n")
  const row = (kind: Kind) =>
    `| ${label[kind]} | ${unary[kind].callsPerSecond.toLocaleString("en")} | ${unary[kind].cpuMicrosPerCall} | ${
      Math.round(1e6 / unary[kind].cpuMicrosPerCall).toLocaleString("en")
    } | ${unary[kind].rounds.map((n) => n.toLocaleString("en")).join(", ")} |`
  const shutdownRow = (kind: Kind) =>
    `| ${label[kind]} | ${idle[kind].exitMs} | ${busy[kind].remainingMs} | ${busy[kind].exitMs} | ${busy[kind].overMs} | ${
      busy[kind].worstOverMs
    } |`
  const markdown = `# gRPC benchmarks

${machine}; \`npm run bench:grpc\`. Client in the benchmark process, each server in a child process.

## Unary throughput

${CONCURRENCY} calls kept in flight on one connection for ${ROUND_MS / 1000} s per server per round; ${ROUNDS} rounds, each running
both servers back to back, which goes first alternating; medians. *CPU per call* is the server process's CPU time divided
by the calls it served: on two cores the client in this process is the bottleneck, and CPU per call shows what the
server itself spends.

| server | calls/s | server CPU per call (µs) | capacity: calls per server CPU second | rounds (calls/s) |
| --- | --- | --- | --- | --- |
${row("plain")}
${row("effect")}

**Effect handlers / plain, median of the per-round ratios: ${unary.throughputRatio}× the throughput, ${unary.cpuRatio}× the
calls per server CPU second** (target ≥ 0.9×).

## Shutdown latency

SIGTERM to process exit, median of ${SHUTDOWN_ROUNDS} rounds, alternating. *Idle*: one open client connection, no call.
*In flight*: SIGTERM ${SIGNAL_AFTER_MS} ms into a ${IN_FLIGHT_MS} ms call, which must complete OK; *over* is exit
minus the call's end at the client (target ≤ 50 ms). Plain grpc-js: \`tryShutdown(() => process.exit(0))\` on SIGTERM, with
no deadline; the Effect server runs under \`Main.runMain\` (drain delay 0) and also writes the shutdown report.

| server | idle: exit (ms) | in flight: call's remaining (ms) | in flight: exit (ms) | over (ms) | worst over (ms) |
| --- | --- | --- | --- | --- | --- |
${shutdownRow("plain")}
${shutdownRow("effect")}
`
  writeFileSync(here("./results.md"), markdown)
  console.log(markdown)
}

await main()
