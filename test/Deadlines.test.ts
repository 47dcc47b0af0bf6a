/**
 * One deadline model: the instants are fixed at the quit event and every
 * group and closer reads them, wherever it sits in the layer graph, so that
 * `drainDelay + drainTimeout + closeTimeout ≤ shutdownTimeout` means an exit
 * before the shutdown deadline. Driven by TestClock through `Shutdown.run`.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Option, Result } from "effect"
import { TestClock } from "effect/testing"
import { Closer, Options, Quit, Shutdown } from "../src/index.ts"
import { captureLogs } from "./support/logs.ts"

const noEnv = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({}))

/** `Shutdown.run(Shutdown.launch(layer))` on a fresh quit event; `drive` steps the TestClock. */
const supervise = <E>(layer: Layer.Layer<never, E, Quit.Quit>, options: Options.Input, drive: Effect.Effect<void, never, Quit.Quit>) =>
  Effect.gen(function*() {
    const running = yield* Effect.forkChild(Shutdown.run(Shutdown.launch(layer)), { startImmediately: true })
    yield* drive
    return yield* Fiber.join(running)
  }).pipe(Effect.provide(Quit.layer(options, { phase: "starting" })), noEnv)

/** A group with one unit that never ends by itself; `log` hears when it is cut. */
const stuckGroup = (name: string, log: Array<string>) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const group = yield* Quit.group(name)
    yield* group.fork(Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => log.push(`${name} cut`)))))
  }))

const hungCloser = (name: string, log: Array<string>) =>
  Layer.effectDiscard(Closer.add(name, Effect.sync(() => log.push(`${name} closing`)).pipe(Effect.andThen(Effect.never))))

const at = (log: Array<string>) => Effect.map(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => (entry: string) => log.push(`${entry}@${now}`))

describe("one deadline for every group and closer", () => {
  it.effect("two stacked groups with stuck units are both cut at the drain deadline; the exit comes before the shutdown timeout", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      // The case: each group started its own drain timer when its finalizer ran, so the
      // lower one was never cut and ended `abandoned` at the shutdown timeout.
      const Workers = stuckGroup("workers", log)
      const Server = stuckGroup("server", log).pipe(Layer.provide(Workers))
      const report = yield* supervise(
        Server,
        { drainTimeout: "1 second", closeTimeout: "200 millis", shutdownTimeout: "1500 millis" },
        Effect.gen(function*() {
          yield* Effect.yieldNow
          yield* Quit.fire(Quit.signal("SIGTERM"))
          yield* TestClock.adjust("999 millis")
          assert.deepStrictEqual(log, [], "nothing is cut before the drain deadline")
          yield* TestClock.adjust("1 millis")
        })
      )
      assert.sameMembers(log, ["server cut", "workers cut"])
      assert.deepInclude(report, { ending: "graceful", exitCode: 0, totalMillis: 1000 })
      const rows = Object.fromEntries(report.rows.map((row) => [row.name, row]))
      for (const name of ["server", "workers"]) {
        assert.deepInclude(rows[name], { outcome: "cut", inFlightAtDrain: 1, inFlightAtEnd: 0, detail: "1 cut at the drain deadline" })
      }
    })
  })

  it.effect("three hung closers in a dependency chain are all abandoned by the close deadline, before the shutdown timeout", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      // db ← cache ← broker ← a server whose unit is cut at the drain deadline (1 s).
      const Chain = stuckGroup("server", log).pipe(
        Layer.provide(hungCloser("broker", log)),
        Layer.provide(hungCloser("cache", log)),
        Layer.provide(hungCloser("db", log))
      )
      const report = yield* supervise(
        Chain,
        { drainTimeout: "1 second", closeTimeout: "400 millis", shutdownTimeout: "1500 millis" },
        Effect.gen(function*() {
          yield* Effect.yieldNow
          yield* Quit.fire(Quit.signal("SIGTERM"))
          yield* TestClock.adjust("1 second")
          assert.deepStrictEqual(log, ["server cut", "broker closing"], "the first closer starts when the server is done")
          yield* TestClock.adjust("399 millis")
          assert.deepStrictEqual(log, ["server cut", "broker closing"])
          yield* TestClock.adjust("1 millis")
        })
      )
      // Each closer's own timeout (400 ms) would have stacked to 2.2 s; the close deadline is at 1.4 s.
      assert.deepStrictEqual(log, ["server cut", "broker closing", "cache closing", "db closing"])
      assert.deepInclude(report, { ending: "graceful", exitCode: 1, totalMillis: 1400 })
      const rows = Object.fromEntries(report.rows.map((row) => [row.name, row]))
      assert.deepInclude(rows["server"], { outcome: "cut" })
      for (const name of ["broker", "cache", "db"]) {
        assert.deepInclude(rows[name], { outcome: "timed out", detail: "abandoned at the close deadline" })
      }
    })
  })

  it.effect("a group's own shorter drain timeout cuts it sooner; the shared drain deadline still bounds the rest", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const Quick = Layer.effectDiscard(Effect.gen(function*() {
        const group = yield* Quit.group("quick", { drainTimeout: "300 millis" })
        const mark = yield* at(log)
        yield* group.fork(Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => mark("quick cut")))))
      }))
      const report = yield* supervise(
        Layer.merge(Quick, stuckGroup("slow", log)),
        { drainDelay: "1 second", drainTimeout: "2 seconds" },
        Effect.gen(function*() {
          yield* Effect.yieldNow
          yield* Quit.fire(Quit.signal("SIGTERM"))
          yield* TestClock.adjust("1299 millis")
          assert.deepStrictEqual(log, [])
          yield* TestClock.adjust("1 millis")
          assert.lengthOf(log, 1, "its own timeout counts from the end of the drain delay")
          yield* TestClock.adjust("1700 millis")
        })
      )
      assert.strictEqual(log[1], "slow cut")
      const rows = Object.fromEntries(report.rows.map((row) => [row.name, row]))
      assert.deepInclude(rows["quick"], { outcome: "cut", detail: "1 cut at the drain timeout" })
      assert.deepInclude(rows["slow"], { outcome: "cut", detail: "1 cut at the drain deadline" })
      assert.strictEqual(report.totalMillis, 3000)
    })
  })

  it.effect("the deadlines are visible to user code: a closer hands the time left to a client's own close", () => {
    const handed: Array<number> = []
    return Effect.gen(function*() {
      const Broker = Layer.effectDiscard(Closer.add(
        "broker",
        Effect.flatMap(Quit.timeLeft("close"), (left) => Effect.sync(() => handed.push(Duration.toMillis(left))))
      ))
      const seen = { before: Option.none<Quit.Deadlines>(), after: Option.none<Quit.Deadlines>() }
      yield* supervise(
        Broker,
        { drainDelay: "2 seconds", drainTimeout: "10 seconds", closeTimeout: "5 seconds", shutdownTimeout: "20 seconds" },
        Effect.gen(function*() {
          yield* Effect.yieldNow
          seen.before = yield* Quit.deadlines
          yield* TestClock.adjust("1 second")
          yield* Quit.fire(Quit.signal("SIGTERM"))
          seen.after = yield* Quit.deadlines
          yield* TestClock.adjust("2 seconds")
        })
      )
      assert.isTrue(Option.isNone(seen.before), "no deadlines before the quit event")
      assert.deepStrictEqual(Option.getOrThrow(seen.after), { fired: 1000, stopping: 3000, drain: 13000, close: 18000, shutdown: 21000 })
      // The closer ran at the end of the drain delay (3 s): 15 s were left until the close deadline.
      assert.deepStrictEqual(handed, [15_000])
    })
  })
})

describe("the budget, checked at start", () => {
  const load = (env: Record<string, string>, input: Options.Input = {}) =>
    Effect.result(Options.load(input)).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })))

  it.effect("SHUTDOWN_TIMEOUT alone: the drain and close timeouts are derived to fit inside it (4 : 1, one part spare)", () =>
    Effect.gen(function*() {
      const options = Result.getOrThrow(yield* load({ SHUTDOWN_TIMEOUT: "10s" }))
      assert.deepStrictEqual(
        [options.drainDelay, options.drainTimeout, options.closeTimeout, options.shutdownTimeout].map(Duration.toMillis),
        [0, 6666, 1666, 10_000]
      )
      assert.deepStrictEqual(options.origins, {
        drainDelay: "default",
        drainTimeout: "derived",
        closeTimeout: "derived",
        shutdownTimeout: "environment"
      })
      const withDelay = Result.getOrThrow(yield* load({ SHUTDOWN_TIMEOUT: "30s", DRAIN_DELAY: "6s", CLOSE_TIMEOUT: "4s" }))
      // 30 − 6 − 4 = 20 s left; the drain timeout takes 4 of its 5 parts.
      assert.strictEqual(Duration.toMillis(withDelay.drainTimeout), 16_000)
      const none = Result.getOrThrow(yield* load({}))
      assert.deepStrictEqual([none.drainTimeout, none.closeTimeout].map(Duration.toMillis), [20_000, 5000], "the defaults")
    }))

  it.effect("values set that cannot fit are refused, naming every variable and its value", () =>
    Effect.gen(function*() {
      const env = { DRAIN_DELAY: "5s", DRAIN_TIMEOUT: "20s", CLOSE_TIMEOUT: "10s", SHUTDOWN_TIMEOUT: "30s" }
      const refused = yield* load(env)
      assert.isTrue(Result.isFailure(refused))
      const error = Result.isFailure(refused) ? refused.failure : undefined
      assert.strictEqual(error?._tag, "InvalidOption")
      assert.strictEqual(
        error?.message,
        `SHUTDOWN_TIMEOUT="30s": DRAIN_DELAY=5s + DRAIN_TIMEOUT=20s + CLOSE_TIMEOUT=10s = 35s exceeds SHUTDOWN_TIMEOUT=30s; ` +
          `raise SHUTDOWN_TIMEOUT or lower the others (every deadline must fall inside it)`
      )
      const fromCode = yield* load({}, { drainTimeout: "1 minute" })
      assert.isTrue(Result.isFailure(fromCode))
      assert.strictEqual(
        Result.isFailure(fromCode) ? fromCode.failure.message : "",
        `drainTimeout option="1m": DRAIN_TIMEOUT (1m, the drainTimeout option) exceeds SHUTDOWN_TIMEOUT (30s, the default), ` +
          `leaving nothing for CLOSE_TIMEOUT; raise SHUTDOWN_TIMEOUT or lower the others (every deadline must fall inside it)`
      )
    }))

  it.effect("a component timeout longer than the shared one is refused before the component acquires anything", () => {
    const { logs, provide } = captureLogs()
    const acquired: Array<string> = []
    return Effect.gen(function*() {
      const Greedy = Layer.effectDiscard(Effect.gen(function*() {
        const group = yield* Quit.group("api", { drainTimeout: "25 seconds" })
        acquired.push(group.name)
      }))
      const report = yield* supervise(Greedy, {}, Effect.void)
      assert.deepStrictEqual(acquired, [])
      assert.deepInclude(report, { ending: "failed", exitCode: 1 })
      const error = logs.find((log) => log.level === "Error")
      assert.strictEqual(
        error?.text,
        `invalid configuration: api: drainTimeout="25 seconds": longer than DRAIN_TIMEOUT (20s, derived from SHUTDOWN_TIMEOUT): ` +
          `a component may have a shorter timeout than the shared one, never a longer one`
      )
      const closer = yield* Effect.flip(
        Closer.add("broker", Effect.void, { timeout: "6 seconds" }).pipe(Effect.scoped, Effect.provide(Quit.layer()), noEnv)
      )
      assert.strictEqual(closer.variable, "broker: timeout")
      assert.include(closer.reason, "longer than CLOSE_TIMEOUT (5s, derived from SHUTDOWN_TIMEOUT)")
    }).pipe(provide)
  })
})
