/**
 * The grace for a request already on the wire, one rule: a keep-alive
 * connection whose last response ended less than the grace before the
 * listener closed keeps the rest of it — whether that response ended before
 * the quit event, during the drain delay or after the close — and a request
 * half received when the listener closes is served. And the listener itself
 * closes in the turn the drain delay ends.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as NodeHttp from "node:http"
import * as Http from "../src/Http.ts"
import { Quit } from "../src/index.ts"
import { connect, launch, awaitPhase, portOf, row, withQuit } from "./support/http.ts"
import { type RawClient, rawClient } from "./support/raw.ts"

const listenOn = { port: 0, host: "127.0.0.1" } as const

/** The first `n` responses, or fewer if the connection ends first. */
const responses = (client: RawClient, n: number) =>
  Promise.race([client.received(n), client.ended.then(() => client.responses())])

const hello = () => NodeHttp.createServer((_req, res) => res.end("hello"))

describe("Http: the grace after a keep-alive response", () => {
  it.live("a response that ended just before the quit event (no drain delay): the next request on its connection is served, with connection: close", () =>
    withQuit(Effect.gen(function*() {
      const server = hello()
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      const client = yield* Effect.promise(() => rawClient(portOf(server)))
      client.send("/first")
      const [first] = yield* Effect.promise(() => client.received(1))
      yield* Quit.fire("test")
      // The listener is closed, the connection idle: its client's next request
      // may already be on the wire.
      assert.isFalse(server.listening)
      client.send("/second")
      const replies = yield* Effect.promise(() => responses(client, 2))
      const ended = yield* Effect.promise(() => client.ended)
      const report = yield* Fiber.join(run)
      assert.deepInclude(first, { status: 200, connection: "keep-alive", body: "hello" })
      assert.deepInclude(replies[1], { status: 200, connection: "close", body: "hello" })
      assert.strictEqual(ended, "closed", "closed by the server after its last response, not reset")
      assert.deepInclude(row(report, "http"), { outcome: "done" })
    }), { drainDelay: 0 }))

  it.live("a response that ended during the drain delay: the next request after the listener closed is served", () =>
    withQuit(Effect.gen(function*() {
      let release: () => void = () => {}
      const server = NodeHttp.createServer((req, res) => {
        if (req.url !== "/held") return void res.end("hello")
        res.writeHead(200, { "content-length": "4" })
        res.write("he")
        release = () => res.end("ld")
      })
      let closing: AbortSignal | undefined
      const run = yield* launch(Http.layerNode((setup) => (closing = setup.closing, server), listenOn))
      yield* awaitPhase("running")
      const client = yield* Effect.promise(() => rawClient(portOf(server)))
      client.send("/held")
      yield* Effect.promise(() => new Promise<void>((resolve) => client.socket.once("data", () => resolve())))
      yield* Quit.fire("test")
      // Its headers said keep-alive before the quit event; it ends now, in the drain delay.
      release()
      const [held] = yield* Effect.promise(() => client.received(1))
      yield* Effect.promise(() => new Promise<void>((resolve) => closing?.addEventListener("abort", () => resolve())))
      assert.isFalse(server.listening)
      client.send("/next")
      const replies = yield* Effect.promise(() => responses(client, 2))
      yield* Fiber.join(run)
      assert.deepInclude(held, { status: 200, connection: "keep-alive", body: "held" })
      assert.deepInclude(replies[1], { status: 200, connection: "close", body: "hello" })
      assert.strictEqual(yield* Effect.promise(() => client.ended), "closed")
    }), { drainDelay: "150 millis" }))

  it.live("a connection idle for longer than the grace closes at once when the listener closes, before the request in flight ends", () =>
    withQuit(Effect.gen(function*() {
      let release: () => void = () => {}
      const server = NodeHttp.createServer((req, res) => {
        if (req.url === "/held") release = () => res.end("held")
        else res.end("hello")
      })
      const run = yield* launch(Http.layerNode(() => server, { ...listenOn, closeTimeout: "100 millis" }))
      yield* awaitPhase("running")
      const idle = yield* Effect.promise(() => rawClient(portOf(server)))
      idle.send("/first")
      yield* Effect.promise(() => idle.received(1))
      const busy = yield* Effect.promise(() => rawClient(portOf(server)))
      busy.send("/held")
      yield* Effect.sleep("200 millis")
      const order: Array<string> = []
      void idle.ended.then(() => order.push("idle closed"))
      void busy.received(1).then(() => order.push("held answered"))
      yield* Quit.fire("test")
      // Within the grace (100 ms): had the idle connection been given it, it
      // would close after this answer.
      yield* Effect.sleep("50 millis")
      release()
      yield* Effect.promise(() => Promise.all([idle.ended, busy.ended]))
      yield* Fiber.join(run)
      assert.deepStrictEqual(order, ["idle closed", "held answered"])
    }), { drainDelay: 0 }))

  it.live("a request half received when the listener closes is served, on a keep-alive connection idle for longer than the grace", () =>
    withQuit(Effect.gen(function*() {
      const server = hello()
      const run = yield* launch(Http.layerNode(() => server, { ...listenOn, closeTimeout: "300 millis" }))
      yield* awaitPhase("running")
      const client = yield* Effect.promise(() => rawClient(portOf(server)))
      client.send("/first")
      yield* Effect.promise(() => client.received(1))
      yield* Effect.sleep("400 millis")
      // Half the next request, then the quit event, then the rest.
      client.socket.write("GET /second HTTP/1.1\r\nHo")
      yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 50)))
      yield* Quit.fire("test")
      assert.isFalse(server.listening)
      client.socket.write("st: test\r\n\r\n")
      const replies = yield* Effect.promise(() => responses(client, 2))
      yield* Fiber.join(run)
      assert.deepInclude(replies[1], { status: 200, connection: "close", body: "hello" })
      assert.strictEqual(yield* Effect.promise(() => client.ended), "closed")
    }), { drainDelay: 0 }))
})

describe("Http: the listener closes in the turn the drain delay ends", () => {
  it.effect("no drain delay: closed when the quit event's call returns; a connection then is refused", () =>
    withQuit(Effect.gen(function*() {
      const server = hello()
      let closes = 0
      server.on("close", () => closes++)
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      assert.isTrue(server.listening)
      const port = portOf(server)
      yield* Quit.fire("test")
      assert.isFalse(server.listening)
      assert.strictEqual(yield* Effect.promise(() => connect(port)), "ECONNREFUSED")
      yield* Fiber.join(run)
      assert.strictEqual(closes, 1, "'close' is emitted once")
    }), { drainDelay: 0 }))

  it.effect("a drain delay of 5 s on the TestClock: listening until it ends, closed when it has", () =>
    withQuit(Effect.gen(function*() {
      const server = hello()
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      yield* Quit.fire("test")
      yield* TestClock.adjust("4999 millis")
      assert.isTrue(server.listening, "still listening in the drain delay")
      yield* TestClock.adjust("1 millis")
      assert.isFalse(server.listening)
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(run)
    }), { drainDelay: "5 seconds" }))
})
