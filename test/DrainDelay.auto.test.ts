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

const after = (millis: number) => TestClock.adjust(Duration.millis(millis))

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
      assert.match(report.drainDelay?.evidence ?? "", /its prober answered not ready 3 times \(127\.0\.0\.1 \(every 500ms\)\); no request since the quit event/)
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
        evidence: "still missing: 127.0.0.1 (every 1s) answered not ready 1 of 3 times"
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
        evidence: "its prober answered not ready 3 times (127.0.0.1 (every 500ms)); no request since the quit event"
      })
    }), { drainDelay: "auto 1s..10s" }))
})
