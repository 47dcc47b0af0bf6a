import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { TestClock } from "effect/testing"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Http, Quit, Shutdown } from "effect-graceful"

// The service under test (the test makes the server, to read the port it was given).
const Api = (server: Server) =>
  HttpRouter.serve(HttpRouter.add("GET", "/", HttpServerResponse.text("hello"))).pipe(
    Layer.provide(Http.layer(() => server, { port: 0, name: "api", health: true }))
  )

it.effect("serves through the drain delay, then closes, losing nothing", () =>
  Effect.gen(function*() {
    const server = createServer()
    const shutdown = yield* Effect.forkChild(Shutdown.run(Shutdown.launch(Api(server))))
    // Phase `running` comes once every layer is built: the server listens.
    yield* Quit.phases.pipe(Stream.filter(({ phase }) => phase === "running"), Stream.take(1), Stream.runDrain)
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const get = (path: string) =>
      Effect.promise(() => fetch(url + path).then(async (response) => ({ status: response.status, body: await response.text() })))
    assert.deepStrictEqual(yield* get("/"), { status: 200, body: "hello" })

    yield* Quit.fire(Quit.signal("SIGTERM"))
    // The drain delay: no longer ready, still serving.
    assert.strictEqual((yield* get("/readyz")).status, 503)
    assert.deepStrictEqual(yield* get("/"), { status: 200, body: "hello" })

    yield* TestClock.adjust("5 seconds")
    assert.isFalse(server.listening, "the listener closed at the end of the drain delay")
    // On through the shutdown timeout: a request that never ended would be cut, and its row say so.
    yield* TestClock.adjust("25 seconds")
    const report = yield* Fiber.join(shutdown)
    assert.strictEqual(report.exitCode, 0)
    assert.deepInclude(report.rows.find((row) => row.name === "api"), { kind: "http", outcome: "done", inFlightAtEnd: 0 })
  }).pipe(Effect.provide(Quit.layer({ drainDelay: "5 seconds" }, { phase: "starting" }))))
