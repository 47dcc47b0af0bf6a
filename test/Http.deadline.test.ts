/**
 * The drain timeout and long-lived responses: handlers cut at the deadline,
 * server-sent events and upgraded connections that end themselves when the
 * drain begins, and those that do not.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Stream } from "effect"
import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import * as NodeHttp from "node:http"
import * as NodeHttp2 from "node:http2"
import * as Net from "node:net"
import * as Http from "../src/Http.ts"
import { awaitPhase, drainDuring, fire, get, launch, metric, portOf, row, signal, withQuit } from "./support/http.ts"

const listenOn = { port: 0, host: "127.0.0.1" } as const
const DRAIN_TIMEOUT_MS = 400

/** Reads a streamed response as it arrives. */
const stream = (port: number, path: string) => {
  const chunks: Array<string> = []
  const firstChunk = signal()
  const done = new Promise<{ readonly complete: boolean; readonly at: number }>((resolve) => {
    NodeHttp.get({ port, host: "127.0.0.1", path, agent: new NodeHttp.Agent({ keepAlive: true }) }, (response) => {
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        chunks.push(chunk)
        firstChunk.resolve()
      })
      response.on("end", () => resolve({ complete: true, at: performance.now() }))
      response.on("error", () => resolve({ complete: false, at: performance.now() }))
    }).on("error", () => resolve({ complete: false, at: performance.now() }))
  })
  return { chunks, started: firstChunk.promise, done }
}

const effectServer = <E, R>(routes: Layer.Layer<never, E, R>) => {
  const server = NodeHttp.createServer()
  const layer = HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(Http.layer(() => server, { ...listenOn, drainTimeout: Duration.millis(DRAIN_TIMEOUT_MS) }))
  )
  return { server, layer }
}

describe("Http: the drain timeout", () => {
  it.live("an Effect handler longer than the drain timeout is interrupted at the timeout: its finalizer runs, the client gets 503, the report and the metric count the cut", () =>
    withQuit(Effect.gen(function*() {
      const log: Array<string> = []
      const started = signal()
      // Set when the handler's 10 s would have run out, whether or not it was interrupted.
      let naturalEnd = false
      const { layer, server } = effectServer(HttpRouter.add(
        "GET",
        "/long",
        Effect.sync(() => {
          started.resolve()
          setTimeout(() => naturalEnd = true, 10_000).unref()
        }).pipe(
          Effect.andThen(Effect.sleep("10 seconds")),
          Effect.as(HttpServerResponse.text("never")),
          Effect.onInterrupt(() => Effect.sync(() => log.push("finalizer ran")))
        )
      ))
      const { firedAt, report, result: { at, naturalEndSeen, status } } = yield* drainDuring(layer, () => ({
        started: started.promise,
        done: get(portOf(server), "/long").then((reply) => ({ ...reply, naturalEndSeen: naturalEnd }))
      }))
      assert.strictEqual(status, 503)
      assert.deepStrictEqual(log, ["finalizer ran"])
      assert.isAtLeast(at - firedAt, DRAIN_TIMEOUT_MS - 20, "not before the drain timeout")
      assert.isFalse(naturalEndSeen, "the client saw the cut before the handler's 10 s ran out")
      assert.deepInclude(row(report, "http"), { outcome: "cut", detail: "1 cut at the drain timeout", inFlightAtEnd: 0 })
      assert.strictEqual(yield* metric("effect_graceful_units_cut_total", { group: "http" }), 1)
    })))

  it.live("a bare HttpServer.serve app runs uninterruptibly (Effect's choice): it is waited for up to the close timeout, then its socket is destroyed and the report says timed out", () =>
    withQuit(Effect.gen(function*() {
      const started = signal()
      let handlerEnded = false
      const server = NodeHttp.createServer()
      const app = Effect.sync(started.resolve).pipe(
        Effect.andThen(Effect.sleep("5 seconds")),
        Effect.andThen(Effect.sync(() => handlerEnded = true)),
        Effect.as(HttpServerResponse.text("late"))
      )
      const layer = HttpServer.serve(app).pipe(Layer.provide(Http.layer(() => server, {
        ...listenOn,
        drainTimeout: Duration.millis(DRAIN_TIMEOUT_MS),
        closeTimeout: "300 millis"
      })))
      const { firedAt, report, result: { at, error, handlerEndedSeen } } = yield* drainDuring(layer, () => ({
        started: started.promise,
        done: get(portOf(server), "/").then((reply) => ({ ...reply, handlerEndedSeen: handlerEnded }))
      }))
      assert.strictEqual(error, "ECONNRESET")
      assert.isAtLeast(at - firedAt, DRAIN_TIMEOUT_MS + 280, "waited through the close timeout")
      assert.isFalse(handlerEndedSeen, "the socket was destroyed before the handler's 5 s ended: not waited for")
      assert.deepInclude(row(report, "http"), { outcome: "timed out", inFlightAtEnd: 1 })
    })))

  it.live("a plain Node handler longer than the drain timeout has its socket destroyed at the timeout; the report counts the cut", () =>
    withQuit(Effect.gen(function*() {
      const started = signal()
      const server = NodeHttp.createServer((_req, res) => {
        started.resolve()
        res.write("partial")
        // Its natural end, long after the drain timeout: a response that completes was not cut.
        const natural = setTimeout(() => res.end("late"), 10_000)
        res.on("close", () => clearTimeout(natural))
      })
      const layer = Http.layerNode(() => server, { ...listenOn, drainTimeout: `${DRAIN_TIMEOUT_MS} millis` })
      const { firedAt, report, result: { at, complete } } = yield* drainDuring(layer, () => ({
        started: started.promise,
        done: stream(portOf(server), "/never-ends").done
      }))
      assert.isFalse(complete, "the client sees the response cut before its natural end, not completed")
      assert.isAtLeast(at - firedAt, DRAIN_TIMEOUT_MS - 20)
      assert.deepInclude(row(report, "http"), { outcome: "cut", detail: "1 cut at the drain timeout", inFlightAtDrain: 1 })
    })))
})

describe("Http: long-lived responses", () => {
  const sse = (n: number) => `data: ${n}\n\n`
  const bye = "event: bye\ndata: closing\n\n"

  it.live("an Effect server-sent-events stream that watches the drain ends with a last event before the timeout", () =>
    withQuit(Effect.gen(function*() {
      const { layer, server } = effectServer(HttpRouter.add(
        "GET",
        "/events",
        Effect.gen(function*() {
          let n = 0
          const ticks = Stream.tick("20 millis").pipe(Stream.map(() => sse(n++)))
          const body = yield* Http.endOnClose(ticks, bye)
          return HttpServerResponse.stream(Stream.encodeText(body), { contentType: "text/event-stream" })
        })
      ))
      let events: ReturnType<typeof stream> | undefined
      const { report, result: { complete } } = yield* drainDuring(layer, () => events = stream(portOf(server), "/events"))
      assert.isTrue(complete, "the stream ended cleanly")
      assert.isTrue(events!.chunks.join("").endsWith(bye), "with the last event")
      // `done`, not `cut`: it ended before the drain timeout, which would have cut it.
      assert.deepInclude(row(report, "http"), { outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0 })
    })))

  it.live("a plain Node event stream watches the server's drain signal; one that does not is cut at the timeout", () =>
    withQuit(Effect.gen(function*() {
      const server = (closing: AbortSignal) =>
        NodeHttp.createServer((req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" })
          let n = 0
          const timer = setInterval(() => res.write(sse(n++)), 20)
          res.on("close", () => clearInterval(timer))
          if (req.url === "/polite") closing.addEventListener("abort", () => res.end(bye), { once: true })
        })
      let made: NodeHttp.Server | undefined
      const run = yield* launch(Http.layerNode(({ closing }) => made = server(closing), {
        ...listenOn,
        drainTimeout: `${DRAIN_TIMEOUT_MS} millis`
      }))
      yield* awaitPhase("running")
      const polite = stream(portOf(made!), "/polite")
      const stubborn = stream(portOf(made!), "/stubborn")
      yield* Effect.promise(() => Promise.all([polite.started, stubborn.started]))
      const firedAt = yield* fire
      const [politeEnd, stubbornEnd] = yield* Effect.promise(() => Promise.all([polite.done, stubborn.done]))
      const report = yield* Fiber.join(run)
      assert.isTrue(politeEnd.complete)
      assert.isTrue(polite.chunks.join("").endsWith(bye))
      assert.isBelow(politeEnd.at, stubbornEnd.at, "the polite stream ended before the stubborn one was cut")
      assert.isFalse(stubbornEnd.complete)
      assert.isAtLeast(stubbornEnd.at - firedAt, DRAIN_TIMEOUT_MS - 20)
      assert.deepInclude(row(report, "http"), { outcome: "cut", inFlightAtDrain: 2, detail: "1 cut at the drain timeout" })
    })))

  it.live("upgraded connections are counted: one that watches the drain closes itself, one that does not is destroyed at the timeout", () =>
    withQuit(Effect.gen(function*() {
      let made: NodeHttp.Server | undefined
      const run = yield* launch(Http.layerNode(({ closing }) => {
        made = NodeHttp.createServer()
        made.on("upgrade", (req: NodeHttp.IncomingMessage, socket: Net.Socket) => {
          socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
          if (req.url === "/polite") closing.addEventListener("abort", () => socket.end("bye"), { once: true })
        })
        return made
      }, { ...listenOn, drainTimeout: `${DRAIN_TIMEOUT_MS} millis` }))
      yield* awaitPhase("running")
      const upgrade = (path: string) => {
        const socket = Net.connect(portOf(made!), "127.0.0.1", () =>
          socket.write(`GET ${path} HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`))
        let received = ""
        const switched = signal()
        socket.on("data", (chunk) => {
          received += chunk.toString("latin1")
          if (received.includes("\r\n\r\n")) switched.resolve()
        })
        socket.on("error", () => {})
        const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now())))
        return { switched: switched.promise, closed, received: () => received }
      }
      const polite = upgrade("/polite")
      const stubborn = upgrade("/stubborn")
      yield* Effect.promise(() => Promise.all([polite.switched, stubborn.switched]))
      assert.strictEqual(yield* metric("effect_graceful_in_flight", { group: "http" }), 2)
      const firedAt = yield* fire
      const [politeAt, stubbornAt] = yield* Effect.promise(() => Promise.all([polite.closed, stubborn.closed]))
      const report = yield* Fiber.join(run)
      assert.isTrue(polite.received().endsWith("bye"))
      assert.isBelow(politeAt, stubbornAt, "the polite socket closed before the stubborn one was destroyed")
      assert.isAtLeast(stubbornAt - firedAt, DRAIN_TIMEOUT_MS - 20)
      assert.deepInclude(row(report, "http"), { outcome: "cut", inFlightAtDrain: 2, detail: "1 cut at the drain timeout" })
    })))
})

describe("Http: Effect WebSockets", () => {
  const handler = (polite: boolean) =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const socket = yield* request.upgrade
      yield* socket.reader // acquiring the reader completes the handshake
      const writer = yield* socket.writer
      yield* writer.write("hello")
      if (!polite) return yield* Effect.never
      yield* Http.closing
      yield* writer.write("bye")
      return HttpServerResponse.empty()
    })

  it.live("one that watches the drain says goodbye and closes normally; one that does not is closed at the timeout (1001, going away)", () =>
    withQuit(Effect.gen(function*() {
      const { layer, server } = effectServer(Layer.mergeAll(
        HttpRouter.add("GET", "/polite", handler(true)),
        HttpRouter.add("GET", "/stubborn", handler(false))
      ))
      const run = yield* launch(layer)
      yield* awaitPhase("running")
      const connect = (path: string) => {
        const ws = new WebSocket(`ws://127.0.0.1:${portOf(server)}${path}`)
        const messages: Array<string> = []
        const hello = signal()
        ws.addEventListener("message", (event) => {
          messages.push(String(event.data))
          hello.resolve()
        })
        const closed = new Promise<{ readonly code: number; readonly at: number }>((resolve) =>
          ws.addEventListener("close", (event) => resolve({ code: event.code, at: performance.now() }))
        )
        return { messages, hello: hello.promise, closed }
      }
      const polite = connect("/polite")
      const stubborn = connect("/stubborn")
      yield* Effect.promise(() => Promise.all([polite.hello, stubborn.hello]))
      assert.strictEqual(yield* metric("effect_graceful_in_flight", { group: "http" }), 2)
      const firedAt = yield* fire
      const [politeEnd, stubbornEnd] = yield* Effect.promise(() => Promise.all([polite.closed, stubborn.closed]))
      const report = yield* Fiber.join(run)
      assert.deepStrictEqual(polite.messages, ["hello", "bye"])
      assert.strictEqual(politeEnd.code, 1000)
      assert.isBelow(politeEnd.at, stubbornEnd.at, "the polite socket closed before the stubborn one was closed at the timeout")
      assert.strictEqual(stubbornEnd.code, 1001)
      assert.isAtLeast(stubbornEnd.at - firedAt, DRAIN_TIMEOUT_MS - 20)
      assert.deepInclude(row(report, "http"), { outcome: "cut", inFlightAtDrain: 2, detail: "1 cut at the drain timeout" })
    })))
})

describe("Http.endOnClose", () => {
  it.effect("ends the stream the moment the drain begins — mid-wait, not at the next element — then emits the last element", () =>
    Effect.gen(function*() {
      const controller = new AbortController()
      const closing = Http.Closing.of({
        signal: controller.signal,
        isClosing: () => controller.signal.aborted,
        await: Effect.callback<void>((resume) => {
          controller.signal.addEventListener("abort", () => resume(Effect.void), { once: true })
        })
      })
      let n = 0
      const ticks = Stream.tick("1 second").pipe(Stream.map(() => ++n))
      const fiber = yield* Http.endOnClose(ticks, 0).pipe(
        Effect.flatMap(Stream.runCollect),
        Effect.provideService(Http.Closing, closing),
        Effect.forkChild({ startImmediately: true })
      )
      yield* TestClock.adjust("2500 millis")
      controller.abort()
      const collected = yield* Fiber.join(fiber)
      assert.deepStrictEqual(collected, [1, 2, 3, 0])
    }))

  it.effect("a stream that ends by itself gets no last element", () =>
    Effect.gen(function*() {
      const closing = Http.Closing.of({ signal: new AbortController().signal, isClosing: () => false, await: Effect.never })
      const collected = yield* Http.endOnClose(Stream.make(1, 2), 0).pipe(
        Effect.flatMap(Stream.runCollect),
        Effect.provideService(Http.Closing, closing)
      )
      assert.deepStrictEqual(collected, [1, 2])
    }))
})

describe("Http.layer: the cut destroys what is still in flight, as Http.layerNode's does", () => {
  it.live("an HTTP/2 response whose handler has returned, to a client whose flow-control window is 0: its session is cut at the drain timeout", () =>
    withQuit(Effect.gen(function*() {
      const server = NodeHttp2.createServer()
      const layer = HttpRouter.serve(
        HttpRouter.add("GET", "/big", Effect.succeed(HttpServerResponse.text("x".repeat(200_000)))),
        { disableLogger: true, disableListenLog: true }
      ).pipe(Layer.provide(Http.layer(() => server, { ...listenOn, drainTimeout: "300 millis", closeTimeout: "4 seconds" })))
      const run = yield* launch(layer)
      yield* awaitPhase("running")
      const session = NodeHttp2.connect(`http://127.0.0.1:${portOf(server)}`, { settings: { initialWindowSize: 0 } })
      session.on("error", () => {})
      const stream = session.request({ ":path": "/big" })
      stream.on("error", () => {})
      yield* Effect.promise(() => new Promise<void>((resolve) => stream.once("response", () => resolve())))
      const closed = new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? 0)))
      yield* fire
      const report = yield* Fiber.join(run)
      const rstCode = yield* Effect.promise(() => closed)
      session.destroy()
      assert.strictEqual(rstCode, NodeHttp2.constants.NGHTTP2_CANCEL, "cut, not completed")
      assert.deepInclude(row(report, "http"), { outcome: "cut", detail: "1 cut at the drain timeout", inFlightAtEnd: 0 })
      assert.strictEqual(report.exitCode, 0)
    })))

  it.live("a WebSocket peer gone silent (it never answers the close frame): its socket is destroyed at the drain timeout", () =>
    withQuit(Effect.gen(function*() {
      const { layer, server } = effectServer(HttpRouter.add(
        "GET",
        "/ws",
        Effect.gen(function*() {
          const request = yield* HttpServerRequest.HttpServerRequest
          const socket = yield* request.upgrade
          yield* socket.reader
          yield* (yield* socket.writer).write("hello")
          return yield* Effect.never
        })
      ))
      const run = yield* launch(layer)
      yield* awaitPhase("running")
      // A peer that completes the handshake, then reads but never writes again.
      const peer = Net.connect(portOf(server), "127.0.0.1")
      peer.on("error", () => {})
      let received = ""
      const upgraded = new Promise<void>((resolve) =>
        peer.on("data", (chunk: Buffer) => {
          received += chunk.toString("latin1")
          if (received.includes("hello")) resolve()
        })
      )
      const ended = new Promise<void>((resolve) => peer.once("close", () => resolve()))
      peer.write(
        "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
      )
      yield* Effect.promise(() => upgraded)
      yield* fire
      const report = yield* Fiber.join(run)
      yield* Effect.promise(() => ended)
      assert.match(received, /^HTTP\/1\.1 101/)
      assert.deepInclude(row(report, "http"), { outcome: "cut", inFlightAtEnd: 0 })
      assert.strictEqual(report.exitCode, 0)
    })))
})
