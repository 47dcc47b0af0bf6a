/**
 * The same graceful shutdown under any runner: `Quit.layer` under
 * `Layer.launch` with a fiber interrupted by hand (what `NodeRuntime.runMain`
 * and `Effect.runFork` do), under `ManagedRuntime.dispose`, and inside
 * `Main.runMain`'s own quit event. Real signals to a child process under
 * `NodeRuntime.runMain` are in test/e2e/NodeRuntime.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, type Duration, Effect, Exit, Fiber, Layer, ManagedRuntime, Option, Result } from "effect"
import { TestClock } from "effect/testing"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { Closer, Http, Options, Quit, Shutdown } from "../src/index.ts"
import { connect, get } from "./support/http.ts"
import { impl } from "./support/quit.ts"

const env = (vars: Record<string, string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: vars }))

/** A server-like group: its intake closes in `onStop`, its unit takes `unit`, then a closer below it. */
const app = (log: Array<string>, unit: Duration.Input = "3 seconds") => {
  const stamp = (entry: string) =>
    Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => Effect.sync(() => log.push(`${entry}@${now}`)))
  const Db = Layer.effectDiscard(Closer.add("db", stamp("db closed")))
  const Server = Layer.effectDiscard(Effect.gen(function*() {
    const group = yield* Quit.group("server", { onStop: stamp("intake closed") })
    yield* group.fork(Effect.sleep(unit).pipe(Effect.andThen(stamp("unit done"))))
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const phase = yield* Quit.phase
        yield* stamp(`finalizer: fired=${yield* Quit.hasFired} phase=${phase.phase}`)
      })
    )
  }))
  return Server.pipe(Layer.provide(Db))
}

describe("Quit.layer under another runner", () => {
  it.effect("Layer.launch interrupted at once (as NodeRuntime.runMain does on a signal): the quit event fires, the drain delay is honored, the deadlines hold", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const main = Layer.launch(app(log, "4 seconds").pipe(Layer.provide(Quit.layer({ drainDelay: "2 seconds" }))))
      const fiber = yield* Effect.forkChild(main, { startImmediately: true })
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("1999 millis")
      assert.deepStrictEqual(log, ["finalizer: fired=true phase=draining@1000"], "the intake stays open through the drain delay")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(log.slice(1), ["intake closed@3000"])
      yield* TestClock.adjust("1 second")
      yield* Fiber.await(fiber)
      assert.deepStrictEqual(log.slice(2), ["unit done@4000", "db closed@4000"], "the closer waits for the group above it")
    })
  })

  it.effect("DRAIN_DELAY from the environment, with no options in code, is read as Main.runMain reads it", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(Layer.launch(app(log).pipe(Layer.provide(Quit.layer()))), { startImmediately: true })
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("499 millis")
      assert.notInclude(log.join(), "intake closed")
      yield* TestClock.adjust("1 millis")
      assert.include(log, "intake closed@500")
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.await(fiber)
    }).pipe(env({ DRAIN_DELAY: "500ms" }))
  })

  it.effect("a bad value in the environment fails the layer before anything is acquired", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const exit = yield* Effect.exit(Layer.launch(app(log).pipe(Layer.provide(Quit.layer()))))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.strictEqual(error?._tag, "Fail")
      assert.include(error?._tag === "Fail" ? (error.error as Options.InvalidOption).message : "", `DRAIN_TIMEOUT="soon"`)
      assert.deepStrictEqual(log, [])
    }).pipe(env({ DRAIN_TIMEOUT: "soon" }))
  })

  it.effect("a scope that closes while the program runs is not a shutdown: the quit event does not fire", () =>
    Effect.gen(function*() {
      const tenant = Effect.gen(function*() {
        const group = yield* Quit.group("tenant")
        yield* group.track(Effect.void)
      }).pipe(Effect.scoped)
      yield* tenant
      assert.isFalse(yield* Quit.hasFired)
      assert.strictEqual((yield* Quit.phase).phase, "running")
    }).pipe(Effect.provide(Quit.layer()), env({})))

  it.live("ManagedRuntime.dispose: the first graceful finalizer fires the quit event; the drain delay and the order hold", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const runtime = ManagedRuntime.make(app(log, "100 millis").pipe(Layer.provideMerge(Quit.layer({ drainDelay: "50 millis" }))))
      const quit = impl(yield* Effect.promise(() => runtime.runPromise(Effect.service(Quit.Quit))))
      yield* Effect.promise(() => runtime.dispose())
      const entries = log.map((entry) => entry.replace(/@\d+$/, ""))
      assert.deepStrictEqual(entries, ["finalizer: fired=true phase=draining", "intake closed", "unit done", "db closed"])
      assert.strictEqual(quit.reason === undefined ? undefined : Quit.describe(quit.reason), "layers released")
      assert.strictEqual(quit.phase.phase, "stopped", "stopped once every layer is released")
      const fired = Option.getOrThrow(Option.fromUndefinedOr(quit.deadlines)).fired
      const closedAt = Number(/@(\d+)$/.exec(log[1]!)![1])
      assert.isAtLeast(closedAt - fired, 50, "the intake closed after the drain delay")
    }))
})

describe("a quit event fired by the layers' release (no signal)", () => {
  it.live("an HTTP server hears it through the drain delay: readiness 503, Connection: close, then the listener closes", () =>
    Effect.gen(function*() {
      const server = NodeHttp.createServer((_request, response) => response.end("ok"))
      const Web = Http.layerNode(() => server, { port: 0, host: "127.0.0.1", health: true })
      const runtime = ManagedRuntime.make(Web.pipe(Layer.provide(Quit.layer({ drainDelay: "300 millis" }))))
      yield* Effect.promise(() => runtime.runPromise(Effect.void))
      const port = (server.address() as AddressInfo).port
      const disposing = runtime.dispose()
      const readiness = yield* Effect.promise(() => get(port, "/readyz"))
      const agent = new NodeHttp.Agent({ keepAlive: true })
      const served = yield* Effect.promise(() => get(port, "/", agent))
      agent.destroy()
      yield* Effect.promise(() => disposing)
      assert.deepInclude(readiness, { status: 503, body: "not ready\n" })
      assert.deepInclude(served, { status: 200, body: "ok" })
      assert.strictEqual(served.headers.connection, "close", "a keep-alive client is told to move on")
      assert.strictEqual(yield* Effect.promise(() => connect(port)), "ECONNREFUSED")
    }))
})

describe("Quit.layer inside Main.runMain's quit event", () => {
  it.effect("is the runner's quit event: one per process; other options are refused", () =>
    Effect.gen(function*() {
      const outer = yield* Quit.Quit
      const same = yield* Effect.service(Quit.Quit).pipe(Effect.provide(Quit.layer({ drainDelay: "1 second" })))
      assert.strictEqual(same, outer)
      const other = yield* Effect.result(Effect.service(Quit.Quit).pipe(Effect.provide(Quit.layer({ drainDelay: "2 seconds" }))))
      assert.isTrue(Result.isFailure(other))
      assert.include(Result.isFailure(other) ? other.failure.message : "", "give them to Main.runMain")
      // The runner's sequence still sees every group registered through the inner layer.
      const report = yield* Effect.gen(function*() {
        const running = yield* Effect.forkChild(
          Shutdown.run(Shutdown.launch(Layer.effectDiscard(Quit.group("inner")).pipe(Layer.provide(Quit.layer({ drainDelay: "1 second" }))))),
          { startImmediately: true }
        )
        yield* Effect.yieldNow
        yield* Quit.fire("test")
        yield* TestClock.adjust("1 second")
        return yield* Fiber.join(running)
      })
      assert.deepStrictEqual(report.rows.map((row) => [row.name, row.outcome]), [["inner", "done"]])
    }).pipe(Effect.provide(Quit.layer({ drainDelay: "1 second" })), env({})))
})
