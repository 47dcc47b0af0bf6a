/**
 * `DRAIN_DELAY=auto`: the listeners close once the instance has evidence that
 * routing here has stopped — every prober answered not ready `notReady`
 * times, no request for `quiet` — never before the minimum, at the latest at
 * the maximum. Real servers and probes, time on the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as NodeHttp from "node:http"
import * as Net from "node:net"
import { Worker } from "node:worker_threads"
import * as Http from "../src/Http.ts"
import { Options, Quit } from "../src/index.ts"
import { awaitPhase, get, launch, portOf, withQuit } from "./support/http.ts"

const withEnv = (env: Record<string, string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

const listenOn = { port: 0, host: "127.0.0.1", health: true } as const

const serve = Effect.gen(function*() {
  const server = NodeHttp.createServer((_req, res) => res.end("hello"))
  const run = yield* launch(Http.layerNode(() => server, listenOn))
  yield* awaitPhase("running")
  const port = portOf(server)
  const probe = Effect.promise(() => get(port, "/readyz", new NodeHttp.Agent({ keepAlive: false })))
  const request = Effect.promise(() => get(port, "/work"))
  return { server, run, probe, request }
})

// The clock moves, then the event loop turns once (the rule, woken by time, reads the I/O first).
const after = (millis: number) =>
  TestClock.adjust(Duration.millis(millis)).pipe(
    Effect.andThen(Effect.repeat(Effect.promise(() => new Promise((resolve) => setImmediate(resolve))), { times: 3 }))
  )

// A prober every 100 ms: twice before the quit event, 3 times after it (not ready by 300 ms).
const probedEvery100ms = Effect.gen(function*() {
  const served = yield* serve
  yield* served.probe
  yield* after(100)
  yield* served.probe
  yield* Quit.fire("test")
  for (const _ of [1, 2, 3]) {
    yield* after(100)
    yield* served.probe
  }
  return served
})

describe("DRAIN_DELAY=auto: the setting", () => {
  it.effect("auto: 1 s to 10 s, 3 not-ready answers, 500 ms quiet; the budget counts the maximum", () =>
    Effect.gen(function*() {
      const options = yield* Options.load().pipe(withEnv({ DRAIN_DELAY: "auto" }))
      assert.strictEqual(Duration.toMillis(options.drainDelay), 10_000)
      assert.deepStrictEqual(options.drainDelayMode, {
        _tag: "Auto",
        min: Duration.seconds(1),
        notReady: 3,
        quiet: Duration.millis(500)
      })
      // 30 s − 10 s shared 4 : 1 with one part spare.
      assert.strictEqual(Duration.toMillis(options.drainTimeout), 13_333)
    }))

  it.effect("auto MIN..MAX from the environment; every setting from code", () =>
    Effect.gen(function*() {
      const env = yield* Options.load().pipe(withEnv({ DRAIN_DELAY: "auto 2s..5s" }))
      assert.strictEqual(Duration.toMillis(env.drainDelay), 5000)
      assert.deepInclude(env.drainDelayMode, { _tag: "Auto", min: Duration.seconds(2) })
      assert.strictEqual(env.origins.drainDelay, "environment")
      const code = yield* Options.fromCode({ drainDelay: { auto: { min: "200ms", max: "3s", notReady: 2, quiet: "1s" } } })
      assert.strictEqual(Duration.toMillis(code.drainDelay), 3000)
      assert.deepStrictEqual(code.drainDelayMode, {
        _tag: "Auto",
        min: Duration.millis(200),
        notReady: 2,
        quiet: Duration.seconds(1)
      })
      const fixed = yield* Options.fromCode({ drainDelay: "2s" })
      assert.deepStrictEqual(fixed.drainDelayMode, { _tag: "Fixed" })
    }))

  it.effect("what cannot be used is refused, naming the variable or option and what is expected", () =>
    Effect.gen(function*() {
      const reversed = yield* Effect.flip(Options.load().pipe(withEnv({ DRAIN_DELAY: "auto 5s..1s" })))
      assert.strictEqual(reversed.message, `DRAIN_DELAY="auto 5s..1s": its minimum 5s is longer than its maximum 1s`)
      const half = yield* Effect.flip(Options.load().pipe(withEnv({ DRAIN_DELAY: "auto 5s" })))
      assert.strictEqual(half.variable, "DRAIN_DELAY")
      assert.match(half.reason, /"auto 1s\.\.10s" \(minimum\.\.maximum\)/)
      const count = yield* Effect.flip(Options.fromCode({ drainDelay: { auto: { notReady: 0 } } }))
      assert.strictEqual(count.variable, "drainDelay option")
      assert.match(count.reason, /notReady must be a whole number/)
      const tooLong = yield* Effect.flip(Options.load().pipe(withEnv({ DRAIN_DELAY: "auto 1s..40s" })))
      assert.strictEqual(tooLong.message, `DRAIN_DELAY="auto 1s..40s": its maximum 40s must be shorter than SHUTDOWN_TIMEOUT (30s, the default)`)
      const fills = yield* Effect.flip(Options.fromCode({ drainDelay: "auto 1s..20s", drainTimeout: "10s" }))
      assert.match(fills.message, /^drainDelay option="auto 1s\.\.20s": the budget counts its maximum: DRAIN_DELAY \(20s, the drainDelay option\) \+ DRAIN_TIMEOUT/)
    }))
})

describe("DRAIN_DELAY=auto: when the listeners close (TestClock)", () => {
  it.effect("a prober on a cadence: open until it has been answered not ready 3 times, closed in that answer's turn", () =>
    withQuit(Effect.gen(function*() {
      const { probe, run, server } = yield* serve
      assert.strictEqual((yield* probe).status, 200)
      yield* after(500)
      assert.strictEqual((yield* probe).status, 200)
      yield* Quit.fire("test")
      for (const _ of [1, 2]) {
        yield* after(500)
        assert.strictEqual((yield* probe).status, 503)
      }
      yield* after(2000)
      assert.isTrue(server.listening, "2 not-ready answers of 3: the balancer may still route here")
      assert.strictEqual((yield* probe).status, 503)
      yield* Effect.yieldNow
      assert.isFalse(server.listening, "closed once the third not-ready answer was given")
      yield* after(30_000)
      const report = yield* Fiber.join(run)
      assert.deepInclude(report.drainDelay, { by: "evidence", millis: 3000 })
      assert.match(report.drainDelay?.evidence ?? "", /its prober answered not ready in 3 rounds \(127\.0\.0\.1 \(every 500ms\)\); no request since the quit event/)
    }), { drainDelay: "auto 1s..10s" }))

  it.effect("no prober, little traffic: a quiet moment does not end it before the minimum", () =>
    withQuit(Effect.gen(function*() {
      const { run, server } = yield* serve
      yield* Quit.fire("test")
      yield* after(600)
      assert.isTrue(server.listening, "quiet for 500 ms, but the minimum is 2 s")
      yield* after(1399)
      assert.isTrue(server.listening)
      yield* after(1)
      assert.isFalse(server.listening, "closed at the minimum")
      yield* after(30_000)
      const report = yield* Fiber.join(run)
      assert.deepInclude(report.drainDelay, { by: "evidence", millis: 2000, evidence: "no prober; no request since the quit event" })
    }), { drainDelay: "auto 2s..10s" }))

  it.effect("a request routed here pushes the end to a quiet period after it", () =>
    withQuit(Effect.gen(function*() {
      const { request, run, server } = yield* serve
      yield* Quit.fire("test")
      yield* after(900)
      const reply = yield* request
      assert.strictEqual(reply.body, "hello")
      assert.strictEqual(reply.headers.connection, "close", "keep-alive ends at the quit event")
      yield* after(100)
      assert.isTrue(server.listening, "the minimum has passed, but a request came 100 ms ago")
      yield* after(399)
      assert.isTrue(server.listening)
      yield* after(1)
      assert.isFalse(server.listening, "500 ms after the last request")
      yield* after(30_000)
      const report = yield* Fiber.join(run)
      assert.deepInclude(report.drainDelay, { by: "evidence", millis: 1400, evidence: "no prober; no request for 500ms" })
    }), { drainDelay: "auto 1s..10s" }))

  it.effect("a connection upgraded during the delay (a WebSocket) is a request routed here", () =>
    withQuit(Effect.gen(function*() {
      const server = NodeHttp.createServer((_req, res) => res.end("hello"))
      server.on("upgrade", (_req, socket: Net.Socket) => socket.end("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      yield* Quit.fire("test")
      yield* after(900)
      const head = yield* Effect.promise(() =>
        new Promise<string>((resolve) => {
          const socket = Net.connect(portOf(server), "127.0.0.1", () =>
            socket.write("GET /socket HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))
          let received = ""
          socket.on("data", (chunk) => received += chunk.toString("latin1"))
          socket.on("close", () => resolve(received))
        })
      )
      assert.match(head, /^HTTP\/1\.1 101/)
      yield* after(499)
      assert.isTrue(server.listening, "upgraded 499 ms ago")
      yield* after(1)
      assert.isFalse(server.listening)
      yield* after(30_000)
      yield* Fiber.join(run)
    }), { drainDelay: "auto 1s..10s" }))

  it.effect("one balancer checking through several backends (one prober, its probes in clusters): a round counts once", () =>
    withQuit(Effect.gen(function*() {
      const { probe, run, server } = yield* serve
      // Four checks a round, 10 ms apart, every 500 ms, as four HAProxy backends checking one /readyz.
      const round = Effect.forEach([0, 1, 2, 3], (i) => Effect.andThen(i === 0 ? Effect.void : after(10), probe), { discard: true })
      yield* round
      yield* after(470)
      yield* round
      yield* Quit.fire("test")
      for (const _ of [1, 2]) {
        yield* after(470)
        yield* round
      }
      assert.isTrue(server.listening, "8 not-ready answers, but in 2 rounds of 3: a backend with fall 3 still routes here")
      yield* after(470)
      yield* round
      yield* after(500)
      assert.isFalse(server.listening, "3 rounds and a quiet period")
      yield* after(30_000)
      assert.match((yield* Fiber.join(run)).drainDelay?.evidence ?? "", /^its prober answered not ready in 3 rounds/)
    }), { drainDelay: "auto 1s..10s" }))

  it.effect("a round the quit event cut in two does not count", () =>
    withQuit(Effect.gen(function*() {
      const { probe, run, server } = yield* serve
      const round = (checks: number) =>
        Effect.forEach(Array.from({ length: checks }, (_, i) => i), (i) => Effect.andThen(i === 0 ? Effect.void : after(10), probe), {
          discard: true
        })
      yield* round(4)
      yield* after(470)
      yield* round(2)
      yield* Quit.fire("test")
      // The round's last two checks: their first not-ready answer; the first two have theirs in the next round.
      yield* after(5)
      yield* round(2)
      for (const _ of [1, 2]) {
        yield* after(470)
        yield* round(4)
      }
      yield* after(400)
      assert.isTrue(server.listening, "2 whole rounds after the one the quit event cut")
      yield* after(70)
      yield* probe
      yield* Effect.yieldNow
      assert.isFalse(server.listening, "the third whole round")
      yield* after(30_000)
      assert.match((yield* Fiber.join(run)).drainDelay?.evidence ?? "", /^its prober answered not ready in 3 rounds/)
    }), { drainDelay: "auto 1s..10s" }))

  it.live("woken by time, the rule reads what has arrived before it trusts the quiet period (an event loop starved of CPU)", () =>
    withQuit(Effect.gen(function*() {
      // The handler notes whether the listener was still open when the request was read.
      const seen: Array<boolean> = []
      const server = NodeHttp.createServer((_req, res) => {
        seen.push(server.listening)
        res.end("late")
      })
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      // A client on another thread: told to go, it connects and sends its request while this
      // loop is busy past the end of the quiet period; the kernel accepts the connection and holds
      // the request; the loop, once free, runs the quiet period's timer before it reads them.
      const flags = new Int32Array(new SharedArrayBuffer(8)) // [go, sent]
      const client = new Worker(
        `const net = require("node:net"); const { parentPort, workerData: { port, flags } } = require("node:worker_threads");
         parentPort.postMessage("ready"); Atomics.wait(flags, 0, 0);
         const socket = net.connect(port, "127.0.0.1", () => {
           socket.write("GET /late HTTP/1.1\\r\\nHost: test\\r\\n\\r\\n"); Atomics.store(flags, 1, 1)
         });
         socket.once("data", (chunk) => { parentPort.postMessage(chunk.toString("latin1")); socket.destroy() });
         socket.once("error", (error) => parentPort.postMessage("error " + error.code))`,
        { eval: true, workerData: { port: portOf(server), flags } }
      )
      yield* Effect.promise(() => new Promise((resolve) => client.once("message", resolve)))
      const replied = new Promise<string>((resolve) => client.once("message", resolve))
      yield* Quit.fire("test")
      const fired = performance.now()
      Atomics.store(flags, 0, 1)
      Atomics.notify(flags, 0)
      while (Atomics.load(flags, 1) === 0 || performance.now() < fired + 700) {
        // busy
      }
      assert.match(yield* Effect.promise(() => replied), /^HTTP\/1\.1 200/)
      yield* Effect.promise(() => client.terminate())
      assert.deepStrictEqual(seen, [true], "the request waiting unread was read before the quiet period was trusted")
      const report = yield* Fiber.join(run)
      assert.match(report.drainDelay?.evidence ?? "", /^no prober; no request for /)
    }), { drainDelay: "auto 0ms..10s", drainTimeout: "1s", shutdownTimeout: "12s" }))

  it.effect("evidence complete before the minimum: closed at the minimum, not sooner", () =>
    withQuit(Effect.gen(function*() {
      const { run, server } = yield* probedEvery100ms
      yield* after(600)
      assert.isTrue(server.listening, "3 not-ready answers at 300 ms; the minimum is 1 s")
      yield* after(99)
      assert.isTrue(server.listening)
      yield* after(1)
      assert.isFalse(server.listening)
      yield* after(30_000)
      assert.deepInclude((yield* Fiber.join(run)).drainDelay, { by: "evidence", millis: 1000 })
    }), { drainDelay: "auto 1s..10s" }))

  it.effect("a prober that falls silent after the quit event: closed at the maximum, the report says what was missing", () =>
    withQuit(Effect.gen(function*() {
      const { probe, run, server } = yield* serve
      yield* probe
      yield* after(1000)
      yield* probe
      yield* Quit.fire("test")
      yield* after(500)
      yield* probe
      yield* after(4499)
      assert.isTrue(server.listening, "its prober had 1 not-ready answer of 3")
      yield* after(1)
      assert.isFalse(server.listening, "closed at the maximum")
      yield* after(30_000)
      const report = yield* Fiber.join(run)
      assert.deepInclude(report.drainDelay, {
        by: "maximum",
        millis: 5000,
        evidence: "still missing: 127.0.0.1 (every 1s) answered not ready in 1 of 3 rounds"
      })
    }), { drainDelay: "auto 1s..5s" }))

  it.effect("a fixed drain delay is untouched: no evidence read, nothing in the report", () =>
    withQuit(Effect.gen(function*() {
      const { run, server } = yield* probedEvery100ms
      yield* after(1699)
      assert.isTrue(server.listening)
      yield* after(1)
      assert.isFalse(server.listening)
      yield* after(30_000)
      assert.isUndefined((yield* Fiber.join(run)).drainDelay)
    }), { drainDelay: "2s" }))

  it.effect("a prober that resets its connection as soon as it has the answer is still known by its address", () =>
    withQuit(Effect.gen(function*() {
      const { probe, run, server } = yield* serve
      // HAProxy closes a check's connection with a reset once it has read the
      // answer; from then the socket no longer knows its peer. Here the reset
      // comes right after the answer is written, before anything else runs.
      const emit = server.emit
      server.emit = function(this: NodeHttp.Server, event: string | symbol, ...args: Array<unknown>): boolean {
        const response = args[1]
        if (event === "request" && response instanceof NodeHttp.ServerResponse) {
          const end = response.end
          response.end = function(this: NodeHttp.ServerResponse, ...endArgs: Parameters<typeof end>) {
            const ended = Reflect.apply(end, this, endArgs) as NodeHttp.ServerResponse
            this.socket?.destroy()
            return ended
          } as typeof end
        }
        return Reflect.apply(emit, this, [event, ...args]) as boolean
      }
      yield* probe
      yield* after(500)
      yield* probe
      yield* Quit.fire("test")
      for (const _ of [1, 2, 3]) {
        yield* after(500)
        assert.strictEqual((yield* probe).status, 503)
      }
      yield* Effect.yieldNow
      assert.isFalse(server.listening)
      yield* after(30_000)
      const report = yield* Fiber.join(run)
      assert.deepInclude(report.drainDelay, {
        by: "evidence",
        millis: 1500,
        evidence: "its prober answered not ready in 3 rounds (127.0.0.1 (every 500ms)); no request since the quit event"
      })
    }), { drainDelay: "auto 1s..10s" }))
})
