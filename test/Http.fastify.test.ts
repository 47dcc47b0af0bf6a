/**
 * Fastify in one step (`Http.layerFastify`), with real Fastify: `ready()`
 * awaited for the user, `preClose` hooks when the listener is about to close,
 * `onClose` hooks after the drain, one row in the report.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer } from "effect"
import Fastify from "fastify"
import * as Http from "../src/Http.ts"
import { Quit } from "../src/index.ts"
import { awaitPhase, connect, get, launch, portOf, row, signal, withQuit } from "./support/http.ts"

const listenOn = { port: 0, host: "127.0.0.1" } as const

/** A Fastify app whose plugin records its hooks, with a route that takes 300 ms. */
const recorded = (events: Array<string>) => {
  const started = signal()
  const app = Fastify()
  void app.register(async (instance) => {
    instance.addHook("preClose", async () => {
      events.push(`preClose (listening: ${app.server.listening})`)
    })
    instance.addHook("onClose", async () => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      events.push("onClose: database closed")
    })
  })
  app.get("/", async () => "hello")
  app.get("/slow", async () => {
    started.resolve()
    await new Promise((resolve) => setTimeout(resolve, 300))
    events.push("slow answered")
    return "slow"
  })
  return { app, started: started.promise }
}

describe("Http.layerFastify", () => {
  it.live("ready() awaited; preClose while the listener is open, then it closes; the request in flight finishes; onClose after the drain; one row", () =>
    withQuit(Effect.gen(function*() {
      const events: Array<string> = []
      const { app, started } = recorded(events)
      // No `ready()`, no `listen()`: the layer does both.
      const run = yield* launch(Http.layerFastify(() => app, listenOn))
      yield* awaitPhase("running")
      const port = portOf(app.server)
      const hello = yield* Effect.promise(() => get(port, "/"))
      const slow = get(port, "/slow")
      yield* Effect.promise(() => started)
      yield* Quit.fire("test")
      // The listener closes once the preClose hooks have run.
      yield* Effect.promise(() =>
        new Promise<void>((resolve) => {
          const check = () => app.server.listening ? setImmediate(check) : resolve()
          check()
        })
      )
      events.push("listener closed")
      const refused = yield* Effect.promise(() => connect(port))
      const reply = yield* Effect.promise(() => slow)
      const report = yield* Fiber.join(run)
      events.push("report")
      assert.deepInclude(hello, { status: 200, body: "hello" })
      assert.strictEqual(refused, "ECONNREFUSED")
      assert.deepInclude(reply, { status: 200, body: "slow" })
      assert.deepStrictEqual(events, [
        "preClose (listening: true)",
        "listener closed",
        "slow answered",
        "onClose: database closed",
        "report"
      ])
      assert.deepStrictEqual(report.rows.map((r) => [r.name, r.kind, r.outcome]), [["http", "http", "done"]])
      assert.deepInclude(row(report, "http"), { inFlightAtDrain: 1, inFlightAtEnd: 0 })
    }), { drainDelay: 0 }))

  it.live("an onClose hook that fails makes the server's row failed, naming the cause", () =>
    withQuit(Effect.gen(function*() {
      const app = Fastify()
      app.addHook("onClose", async () => {
        throw new Error("the database refused to close")
      })
      const run = yield* launch(Http.layerFastify(() => app, { ...listenOn, name: "api" }))
      yield* awaitPhase("running")
      yield* Quit.fire("test")
      const report = yield* Fiber.join(run)
      assert.deepInclude(row(report, "api"), { outcome: "failed" })
      assert.include(row(report, "api")?.detail ?? "", "the database refused to close")
      assert.strictEqual(report.exitCode, 1)
    }), { drainDelay: 0 }))

  it.effect("a plugin that fails while loading: ReadyError naming the server and the cause; nothing listens", () =>
    withQuit(Effect.gen(function*() {
      const app = Fastify()
      void app.register(async () => {
        throw new Error("no database URL")
      })
      const exit = yield* Effect.exit(Layer.build(Http.layerFastify(() => app, { ...listenOn, name: "api" })))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = Cause.squash(exit.cause)
        assert.instanceOf(error, Http.ReadyError)
        assert.strictEqual((error as Http.ReadyError).message, "api: the app's ready() failed: no database URL")
      }
      assert.isFalse(app.server.listening)
    })))
})
