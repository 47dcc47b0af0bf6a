/**
 * HTTP benchmarks, side by side in one run.
 *
 *   npm run bench:http      # writes bench/http/results.md and results.json
 *
 * - Throughput: hello-world servers in child processes, in pairs — raw
 *   node:http without and through `Http.layerNode`; an `HttpRouter` app on
 *   `NodeHttpServer.layer` and on `Http.layer` — each pair loaded at the same
 *   time by two autocannon instances (a worker thread each; CONNECTIONS
 *   keep-alive connections each, ROUND_SECONDS a round), so that the noise of a shared
 *   machine hits both alike. Figures are medians over ROUNDS; ratios are the
 *   median of per-round ratios. The servers' CPU time per request is read from
 *   the children, so it holds even when the load generator is the bottleneck.
 * - Instructions per request: each of those servers under valgrind's
 *   callgrind, INSTRUCTION_REQUESTS requests counted after as many uncounted:
 *   the cost ratio with the machine's noise taken out (skipped, and said so,
 *   where valgrind is missing).
 * - Shutdown latency: IDLE idle keep-alive sockets and one IN_FLIGHT_MS request
 *   in flight; the shutdown begins SIGNAL_AFTER_MS into the request. We time
 *   the server's `close` (listener closed, every connection gone) against the
 *   request's end, and try a new connection during the drain.
 * - The exit as a client sees it (exit.ts): each contender in a process of
 *   its own, SIGTERM, its exit timed from outside against the last response.
 * - Scale (scale.ts): 10,000 idle HTTP/1.1 connections plus 100 requests in
 *   flight, and 1,000 HTTP/2 sessions: heap per connection, the stop to the
 *   last connection gone, CPU meanwhile.
 *
 *   npm run bench:http -- exit scale    # only those parts
 */
import { NodeHttpServer } from "@effect/platform-node"
import autocannon from "autocannon"
import { Effect, Fiber, Layer, Logger } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createHttpTerminator } from "http-terminator"
import { readFileSync, writeFileSync } from "node:fs"
import * as NodeHttp from "node:http"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import stoppable from "stoppable"
import * as Http from "../../src/Http.ts"
import { Quit, Shutdown } from "../../src/index.ts"
import { connect, get, openIdle, portOf } from "../../test/support/http.ts"
import * as Callgrind from "../support/callgrind.ts"
import { listenerClose } from "./listener.ts"
import { exitLatency, exitSettings } from "./exit.ts"
import { kinds, scale } from "./scale.ts"
import { cpuMicros, median, startServer } from "../support/child.ts"

const ROUNDS = 25
const ROUND_SECONDS = 2
const CONNECTIONS = 50
const IDLE = 100
const IN_FLIGHT_MS = 300
const SIGNAL_AFTER_MS = 50
const SHUTDOWN_ROUNDS = 3
const INSTRUCTION_REQUESTS = 5000

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const round = (n: number, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits

// ---- throughput ------------------------------------------------------------

type ServerKind = "node" | "graceful-node" | "effect" | "graceful-effect"
const pairs: ReadonlyArray<readonly [name: string, base: ServerKind, ours: ServerKind]> = [
  ["raw node:http, without and through Http.layerNode", "node", "graceful-node"],
  ["HttpRouter app, on NodeHttpServer.layer and on Http.layer", "effect", "graceful-effect"]
]

// A worker thread each, so that the two load generators of a pair do not
// share (and take turns on) one event loop.
const load = (port: number, seconds: number) =>
  autocannon({ url: `http://127.0.0.1:${port}/`, connections: CONNECTIONS, duration: seconds, workers: 1 })

interface Sample {
  readonly rps: number
  readonly cpuPerRequest: number
}

/** One round: both servers under the same load at the same time, so that the machine's mood affects both alike. */
const sideBySide = async (servers: ReadonlyArray<Awaited<ReturnType<typeof startServer>>>): Promise<Array<Sample>> => {
  const before = await Promise.all(servers.map((server) => cpuMicros(server.child)))
  const results = await Promise.all(servers.map((server) => load(server.port, ROUND_SECONDS)))
  const after = await Promise.all(servers.map((server) => cpuMicros(server.child)))
  return results.map((result, i) => {
    if (result.errors > 0 || result.non2xx > 0) throw new Error(`${result.errors} errors, ${result.non2xx} non-2xx`)
    return { rps: result.requests.average, cpuPerRequest: (after[i]! - before[i]!) / result.requests.total }
  })
}

const throughput = async () => {
  const figures = []
  for (const [name, base, ours] of pairs) {
    const servers = [await startServer(here("./server.ts"), [base]), await startServer(here("./server.ts"), [ours])]
    await sideBySide(servers) // warm up
    const rounds: Array<{ readonly base: Sample; readonly ours: Sample }> = []
    for (let r = 0; r < ROUNDS; r++) {
      const [b, o] = await sideBySide(servers)
      rounds.push({ base: b!, ours: o! })
      process.stdout.write(`  ${base} ${Math.round(b!.rps)} req/s ${round(b!.cpuPerRequest, 1)} µs · ${ours} ${Math.round(o!.rps)} req/s ${round(o!.cpuPerRequest, 1)} µs\n`)
    }
    for (const server of servers) server.child.kill("SIGKILL")
    figures.push({
      name,
      base: { kind: base, rps: round(median(rounds.map((x) => x.base.rps))), cpuMicrosPerRequest: round(median(rounds.map((x) => x.base.cpuPerRequest)), 1) },
      ours: { kind: ours, rps: round(median(rounds.map((x) => x.ours.rps))), cpuMicrosPerRequest: round(median(rounds.map((x) => x.ours.cpuPerRequest)), 1) },
      // Each round's ratio is of two servers measured at the same moment.
      throughputRatio: round(median(rounds.map((x) => x.ours.rps / x.base.rps)), 3),
      cpuRatio: round(median(rounds.map((x) => x.ours.cpuPerRequest / x.base.cpuPerRequest)), 3),
      throughputRatios: rounds.map((x) => round(x.ours.rps / x.base.rps, 3))
    })
  }
  return figures
}

// ---- instructions per request ------------------------------------------------

const counted = async (port: number, amount: number) => {
  const result = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 20, amount })
  if (result.errors > 0 || result.non2xx > 0) throw new Error(`${result.errors} errors, ${result.non2xx} non-2xx`)
  return result.requests.total
}

const instructions = async () => {
  if (!(await Callgrind.available())) return undefined
  const figures = []
  for (const [name, base, ours] of pairs) {
    const count = (kind: ServerKind) => Callgrind.instructionsPerRequest(here("./server.ts"), [kind], counted, INSTRUCTION_REQUESTS)
    const b = await count(base)
    const o = await count(ours)
    process.stdout.write(`  ${base} ${Math.round(b)} · ${ours} ${Math.round(o)} instructions / request\n`)
    figures.push({ name, base: Math.round(b), ours: Math.round(o), ratio: round(o / b, 3) })
  }
  return figures
}

// ---- shutdown latency --------------------------------------------------------

interface Running {
  readonly server: NodeHttp.Server
  /** Begins the shutdown. */
  readonly stop: () => void
}

const handler = (req: NodeHttp.IncomingMessage, res: NodeHttp.ServerResponse) => {
  if (req.url === "/slow") setTimeout(() => res.end("slow"), IN_FLIGHT_MS)
  else res.end("idle")
}
const listen = { port: 0, host: "127.0.0.1", backlog: 1024 } as const
const listening = (server: NodeHttp.Server) =>
  new Promise<void>((resolve) => server.listening ? resolve() : server.once("listening", () => resolve()))

const silent = Logger.layer([])
const Routes = Layer.mergeAll(
  HttpRouter.add("GET", "/slow", Effect.sleep(IN_FLIGHT_MS).pipe(Effect.as(HttpServerResponse.text("slow")))),
  HttpRouter.add("GET", "/idle", HttpServerResponse.text("idle"))
)
const router = HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true })

/** Runs `layer` through our shutdown sequence; `stop` fires the quit event. */
const graceful = async (server: NodeHttp.Server, layer: Layer.Layer<never, unknown, Quit.Quit>): Promise<Running> => {
  const quit = Effect.runSync(Quit.make({}, { phase: "starting" }))
  Effect.runFork(Shutdown.run(Shutdown.launch(layer)).pipe(Effect.provideService(Quit.Quit, quit), Effect.provide(silent)))
  await listening(server)
  const trigger = Effect.runSync(Effect.provideService(Quit.trigger, Quit.Quit, quit))
  return { server, stop: () => trigger("bench") }
}

const strategies: Record<string, () => Promise<Running>> = {
  "server.close()": async () => {
    const server = NodeHttp.createServer(handler).listen(listen)
    await listening(server)
    return { server, stop: () => server.close() }
  },
  "http-terminator": async () => {
    const server = NodeHttp.createServer(handler).listen(listen)
    await listening(server)
    const terminator = createHttpTerminator({ server, gracefulTerminationTimeout: 10_000 })
    return { server, stop: () => void terminator.terminate() }
  },
  "stoppable": async () => {
    const server = stoppable(NodeHttp.createServer(handler).listen(listen), 10_000)
    await listening(server)
    return { server, stop: () => server.stop() }
  },
  "NodeHttpServer.layer (Effect)": async () => {
    const server = NodeHttp.createServer()
    const fiber = Effect.runFork(Layer.launch(router.pipe(Layer.provide(NodeHttpServer.layer(() => server, listen)))))
    await listening(server)
    return { server, stop: () => void Effect.runFork(Fiber.interrupt(fiber)) }
  },
  "Http.layerNode (ours)": () => {
    const server = NodeHttp.createServer(handler)
    return graceful(server, Http.layerNode(() => server, listen))
  },
  "Http.layer (ours, HttpRouter)": () => {
    const server = NodeHttp.createServer()
    return graceful(server, router.pipe(Layer.provide(Http.layer(() => server, listen))))
  }
}

const scenario = async (start: () => Promise<Running>) => {
  const { server, stop } = await start()
  const port = portOf(server)
  const idle = await openIdle(port, IDLE)
  const closed = new Promise<number>((resolve) => server.once("close", () => resolve(performance.now())))
  const agent = new NodeHttp.Agent({ keepAlive: true })
  const slow = get(port, "/slow", agent)
  await new Promise((resolve) => setTimeout(resolve, SIGNAL_AFTER_MS))
  const stoppedAt = performance.now()
  stop()
  await new Promise((resolve) => setTimeout(resolve, 20))
  const newConnection = await connect(port)
  const reply = await slow
  const closedAt = await closed
  const idleClosedAt = await idle.allClosed
  agent.destroy()
  return {
    afterStop: closedAt - stoppedAt,
    afterLastResponse: closedAt - reply.at,
    idleClosed: idleClosedAt - stoppedAt,
    status: reply.status,
    connection: reply.headers.connection ?? "-",
    newConnection: newConnection === "connected" ? "accepted" : newConnection
  }
}

const shutdownLatency = async () => {
  const results: Record<string, unknown> = {}
  for (const [name, start] of Object.entries(strategies)) {
    const runs: Array<Awaited<ReturnType<typeof scenario>>> = []
    for (let r = 0; r < SHUTDOWN_ROUNDS; r++) runs.push(await scenario(start))
    const last = runs[runs.length - 1]!
    results[name] = {
      closedAfterStopMs: round(median(runs.map((x) => x.afterStop))),
      closedAfterLastResponseMs: round(median(runs.map((x) => x.afterLastResponse))),
      idleClosedAfterStopMs: round(median(runs.map((x) => x.idleClosed))),
      response: `${last.status}, connection: ${last.connection}`,
      newConnectionDuringDrain: last.newConnection
    }
    process.stdout.write(`  ${name}: closed ${JSON.stringify(results[name])}\n`)
  }
  return results as Record<string, {
    closedAfterStopMs: number
    closedAfterLastResponseMs: number
    idleClosedAfterStopMs: number
    response: string
    newConnectionDuringDrain: string
  }>
}

// ---- report ------------------------------------------------------------------

const ratio = (a: number, b: number) => b === 0 ? "-" : `${round(a / b, 2)}×`

const main = async () => {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`
  const parts = process.argv.slice(2)
  const only = (part: string) => parts.length === 0 || parts.includes(part)
  const previous = JSON.parse(readFileSync(here("./results.json"), "utf8")) as Record<string, unknown>
  const log = (line: string) => void process.stdout.write(`${line}\n`)
  process.stdout.write(`throughput (${ROUNDS} rounds × ${ROUND_SECONDS} s, ${CONNECTIONS} connections)\n`)
  const tp = only("throughput") ? await throughput() : previous["throughput"] as Awaited<ReturnType<typeof throughput>>
  process.stdout.write(`instructions per request (callgrind, ${INSTRUCTION_REQUESTS} requests)\n`)
  const ir = only("instructions") ? await instructions() : previous["instructions"] as Awaited<ReturnType<typeof instructions>>
  process.stdout.write(`shutdown latency (${IDLE} idle sockets + one ${IN_FLIGHT_MS} ms request, ${SHUTDOWN_ROUNDS} rounds)\n`)
  const sd = only("shutdown") ? await shutdownLatency() : previous["shutdown"] as Awaited<ReturnType<typeof shutdownLatency>>
  log(`exit after the last response (${exitSettings.IDLE} idle sockets + one request in flight, ${exitSettings.ROUNDS} rounds)`)
  const ex = only("exit") ? await exitLatency(log) : previous["exit"] as Awaited<ReturnType<typeof exitLatency>>
  log("the quit event to the listener's close (100 idle keep-alive connections, drain delay 0)")
  const li = only("listener") ? await listenerClose(log) : previous["listener"] as Awaited<ReturnType<typeof listenerClose>>
  log("scale (10,000 HTTP/1.1 connections, 1,000 HTTP/2 sessions)")
  const sc = only("scale") ? await scale(log) : previous["scale"] as Awaited<ReturnType<typeof scale>>
  const json = {
    machine,
    date: new Date().toISOString(),
    throughput: tp,
    instructions: ir ?? "valgrind not found",
    shutdown: sd,
    exit: ex,
    listener: li,
    scale: sc
  }
  const bestPeer = Math.min(
    ...ex.filter((f) => !f.contender.startsWith("graceful")).map((f) => f.exitAfterLastResponseMs)
  )
  const base = (kind: string) => sc.find((f) => f.kind === kind && f.strategy === "node")!
  writeFileSync(here("./results.json"), JSON.stringify(json, null, 2) + "\n")
  const md = [
    "# HTTP benchmarks",
    "",
    `${machine}; written by \`npm run bench:http\` (bench/http/run.ts) on ${json.date.slice(0, 10)}.`,
    "",
    `## Throughput: hello world, autocannon, ${CONNECTIONS} keep-alive connections per server, ${ROUNDS} rounds of ${ROUND_SECONDS} s`,
    "",
    "Each pair of servers is loaded at the same time, each by its own autocannon worker, so that both see the same",
    "machine; ratios are the median of the per-round ratios. CPU is the server process's own (user + system).",
    "",
    "| servers | req/s (without → with) | server CPU µs / request (without → with) | throughput ratio | CPU ratio | per-round throughput ratios |",
    "| --- | --- | --- | ---: | ---: | --- |",
    ...tp.map((f) =>
      `| ${f.name} | ${f.base.rps} → ${f.ours.rps} | ${f.base.cpuMicrosPerRequest} → ${f.ours.cpuMicrosPerRequest} | **${f.throughputRatio}×** | ${f.cpuRatio}× | ${f.throughputRatios.join(", ")} |`
    ),
    "",
    `## Instructions per request: the same servers under valgrind's callgrind, ${INSTRUCTION_REQUESTS} requests`,
    "",
    "The request path's cost without the machine's noise: instructions counted on every thread of the server (JIT",
    "and GC included) while it serves exactly that many requests, after as many uncounted ones to warm it up;",
    "repeat runs agree within ~0.5 %. Throughput on a saturated core goes as the inverse of this ratio.",
    "",
    ...(ir === undefined
      ? ["valgrind was not found: not measured."]
      : [
        "| servers | instructions / request (without → with) | ratio |",
        "| --- | --- | ---: |",
        ...ir.map((f) => `| ${f.name} | ${f.base} → ${f.ours} | **${f.ratio}×** |`),
        "",
        "A ratio below 1 is not a speed-up: V8 specialises Node's own http code differently from one process to",
        "another (callgrind's function list shows the raw server spending more in inline-cache miss handlers such as",
        "`Builtins_LoadIC`). Read it as no measurable cost."
      ]),
    "",
    `## Shutdown latency: ${IDLE} idle keep-alive sockets and one ${IN_FLIGHT_MS} ms request in flight, median of ${SHUTDOWN_ROUNDS}`,
    "",
    `The shutdown begins ${SIGNAL_AFTER_MS} ms into the request, so its remaining work is ~${IN_FLIGHT_MS - SIGNAL_AFTER_MS} ms.`,
    "\"Closed\" is the server's `close` event: listener closed and every connection gone.",
    "",
    "| strategy | closed after the shutdown began (ms) | closed after the last response (ms) | idle sockets closed after (ms) | in-flight response | new connection during the drain |",
    "| --- | ---: | ---: | ---: | --- | --- |",
    ...Object.entries(sd).map(([name, r]) =>
      `| ${name} | ${r.closedAfterStopMs} | ${r.closedAfterLastResponseMs} | ${r.idleClosedAfterStopMs} | ${r.response} | ${r.newConnectionDuringDrain} |`
    ),
    "",
    `## Exit after the last response, seen from outside: ${exitSettings.IDLE} keep-alive sockets idle for ${exitSettings.IDLE_FOR_MS} ms and one 600 ms request, SIGTERM ${exitSettings.SIGNAL_AFTER_MS} ms in`,
    "",
    "Each contender runs in a process of its own (bench/http/exitServer.ts) and stops the way its library does;",
    `the bench times the process's exit against the end of the response in flight. Median of ${exitSettings.ROUNDS} rounds, the`,
    "contenders taking turns each round. Ratio: to the fastest peer of the run.",
    "",
    "Every contender's process loads the same modules (all the contenders', Effect and effect-graceful), so that",
    "its teardown is alike. A preload (bench/http/exitClock.ts) notes, on the machine's monotonic clock, when Node's",
    "`exit` event fires: \"exit begins\" is the library's own way from the last response to the exit, \"teardown\" the",
    "process's end after it (the kernel freeing the process's memory, most of it), each a median of its own.",
    "",
    "| contender | exit after the last response (ms) | ratio to the fastest peer | exit begins (ms) | teardown (ms) | exit code | rounds (ms) |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ...ex.map((f) =>
      `| ${f.contender} | ${f.exitAfterLastResponseMs} | ${ratio(f.exitAfterLastResponseMs, bestPeer)} | ${f.exitBeginsMs} | ${f.teardownMs} | ${f.exitCode} | ${f.rounds.join(", ")} |`
    ),
    "",
    "## From the quit event to the listener's close, beside `server.close()`: 100 idle keep-alive connections, drain delay 0",
    "",
    "In one process, the strategies taking turns; median of the rounds. The time runs from the call that closes the",
    "listener (`server.close()`, or the function `Quit.trigger` gives) until the server no longer listens; the turns",
    "are the event loop's after that call before it is closed — 0: within the call itself, so that no connection",
    "can be accepted (and then reset) in between.",
    "",
    "| strategy | µs to the listener's close | ratio to server.close() | event-loop turns | rounds (µs) |",
    "| --- | ---: | ---: | ---: | --- |",
    ...(li ?? []).map((f) => `| ${f.strategy} | ${f.micros} | ${ratio(f.micros, li[0]!.micros)} | ${f.turns} | ${f.rounds.join(", ")} |`),
    "",
    "## Scale: many connections at a time",
    "",
    `HTTP/1.1: ${kinds.h1.idle.toLocaleString("en")} idle keep-alive connections (each served one request) plus ${kinds.h1.inFlight} requests in`,
    `flight; HTTP/2 (h2c): ${kinds.h2.idle.toLocaleString("en")} idle sessions plus ${kinds.h2.inFlight} with a stream in flight. The requests in flight`,
    "end 200 ms after the stop (the listener closing). Read off the server: heap per connection after a full GC,",
    "the stop to its last connection gone, its CPU meanwhile; ratios to raw node. Median of 3.",
    "",
    "| kind | strategy | heap / connection (B) | ratio | stop → last connection gone (ms) | ratio | CPU during the drain (ms) | ratio |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...sc.map((f) => {
      const b = base(f.kind)
      return `| ${f.kind} | ${f.strategy} | ${f.bytesPerConnection} | ${ratio(f.bytesPerConnection, b.bytesPerConnection)} | ${f.closedAfterStopMs} | ${
        ratio(f.closedAfterStopMs, b.closedAfterStopMs)
      } | ${f.drainCpuMs} | ${ratio(f.drainCpuMs, b.drainCpuMs)} |`
    }),
    "",
    "stoppable closes HTTP/2 sooner because it loses the streams in flight: it counts requests per socket, never",
    "finds them on the socket of their session, and ends every connection at the stop (checked by hand: 5 of 5",
    "streams in flight reset, no response).",
    ""
  ].join("\n")
  writeFileSync(here("./results.md"), md)
  process.stdout.write(md)
}

void main()
