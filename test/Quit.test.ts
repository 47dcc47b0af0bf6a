import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Metric, Queue, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Closer, Quit, Shutdown } from "../src/index.ts"
import { captureLogs } from "./support/logs.ts"
import { current, rows } from "./support/quit.ts"

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>, options: Parameters<typeof Quit.layer>[0] = {}) =>
  Effect.provide(effect, Quit.layer(options))


describe("the quit event", () => {
  it.effect("fires once; a second fire is harmless and the first reason is kept", () =>
    withQuit(Effect.gen(function*() {
      assert.isFalse(yield* Quit.hasFired)
      assert.isTrue(yield* Quit.fire("deploy"))
      assert.isFalse(yield* Quit.fire("again"))
      assert.isTrue(yield* Quit.hasFired)
      const reason = yield* Quit.fired
      assert.deepStrictEqual(reason, { _tag: "Requested", reason: "deploy" })
      const history = yield* Quit.history
      assert.deepStrictEqual(history.map((change) => change.phase), ["running", "draining"])
    }), { drainDelay: "1 second" }))

  it.effect("fired completes when the event fires, so it can end a wait in a race", () =>
    withQuit(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number>()
      const waiting = yield* Effect.raceFirst(
        Effect.map(Queue.take(queue), (n) => `took ${n}`),
        Effect.map(Quit.fired, (reason) => `quit: ${Quit.describe(reason)}`)
      ).pipe(Effect.forkChild)
      yield* Effect.yieldNow
      assert.isUndefined(waiting.pollUnsafe())
      yield* Quit.fire(Quit.signal("SIGTERM"))
      assert.strictEqual(yield* Fiber.join(waiting), "quit: SIGTERM")
    })))

  it.effect("trigger gives plain JS code a function that fires the event", () =>
    withQuit(Effect.gen(function*() {
      const stop = yield* Quit.trigger
      const frameworkHooks: Array<() => void> = [() => void stop("framework closed")]
      frameworkHooks.forEach((hook) => hook())
      assert.isFalse(stop("twice"))
      assert.deepStrictEqual(yield* Quit.fired, { _tag: "Requested", reason: "framework closed" })
    })))

  it.effect("phases move forward only and carry the Clock time each began", () =>
    withQuit(Effect.gen(function*() {
      const seen = yield* Quit.phases.pipe(
        Stream.takeUntil((change) => change.phase === "stopping"),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* Effect.yieldNow
      yield* TestClock.adjust("3 seconds")
      yield* Quit.fire("test")
      yield* TestClock.adjust("1999 millis")
      assert.strictEqual((yield* Quit.phase).phase, "draining", "until the end of the drain delay")
      yield* TestClock.adjust("1 millis")
      const quit = yield* current
      assert.isFalse(quit.setPhase("running"), "a phase never goes back")
      const changes = Array.from(yield* Fiber.join(seen))
      assert.deepStrictEqual(changes.map((c) => [c.phase, c.at]), [["running", 0], ["draining", 3000], [
        "stopping",
        5000
      ]])
    }), { drainDelay: "2 seconds" }))
})

describe("a program without a quit event", () => {
  it("dies with a message that says how to provide one (Main.runMain, or Quit.layer under another runner)", async () => {
    // What a program gets when the types were sidestepped (a cast, a layer given to one branch only).
    const orphan = Quit.fire("x") as Effect.Effect<boolean>
    const exit = await Effect.runPromiseExit(orphan)
    assert.isTrue(Exit.isFailure(exit))
    const message = Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : ""
    assert.include(message, "Main.runMain")
    assert.include(message, "Quit.layer()")
  })
})

describe("in-flight tracking", () => {
  it.effect("counts a tracked unit for its whole lifetime; awaitIdle wakes the moment it reaches zero", () =>
    withQuit(Effect.gen(function*() {
      const gates = [yield* Deferred.make<void>(), yield* Deferred.make<void>(), yield* Deferred.make<void>()]
      const units = yield* Effect.forEach(gates, (gate) =>
        Deferred.await(gate).pipe(Quit.track("emails"), Effect.forkChild({ startImmediately: true })))
      assert.strictEqual(yield* Quit.inFlight("emails"), 3)
      const idle = yield* Effect.forkChild(Quit.awaitIdle("emails"), { startImmediately: true })
      yield* Deferred.succeed(gates[0]!, undefined)
      yield* Deferred.succeed(gates[1]!, undefined)
      yield* Effect.yieldNow
      assert.strictEqual(yield* Quit.inFlight("emails"), 1)
      assert.isUndefined(idle.pollUnsafe())
      // No clock moves: only the last unit's end can wake the waiter.
      yield* Deferred.succeed(gates[2]!, undefined)
      yield* Fiber.join(idle)
      assert.strictEqual(yield* Quit.inFlight("emails"), 0)
      yield* Fiber.joinAll(units)
    })))

  it.effect("counts are Effect metrics: an in-flight gauge and started/cut counters per group", () =>
    withQuit(Effect.gen(function*() {
      const metric = (id: string) =>
        Effect.map(
          Metric.snapshot,
          (all) => all.find((m) => m.id === id && m.attributes?.["group"] === "metered")?.state as unknown
        )
      const gate = yield* Deferred.make<void>()
      const units = yield* Effect.forEach([1, 2], () =>
        Deferred.await(gate).pipe(Quit.track("metered"), Effect.forkChild({ startImmediately: true })))
      assert.deepStrictEqual(yield* metric("effect_graceful_in_flight"), { value: 2 })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(units)
      assert.deepStrictEqual(yield* metric("effect_graceful_in_flight"), { value: 0 })
      assert.deepInclude(yield* metric("effect_graceful_units_started_total"), { count: 2 })
    })))

  it.effect("a unit that fails or is interrupted is uncounted too; enterUnsafe releases once", () =>
    withQuit(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const group = yield* Quit.group("sockets").pipe(Scope.provide(scope))
      yield* Effect.exit(group.track(Effect.fail("boom")))
      const sleeper = yield* group.track(Effect.never).pipe(Effect.forkChild({ startImmediately: true }))
      assert.strictEqual(yield* group.inFlight, 1)
      yield* Fiber.interrupt(sleeper)
      assert.strictEqual(yield* group.inFlight, 0)
      const release = group.enterUnsafe()
      group.enterUnsafe()
      assert.strictEqual(yield* group.inFlight, 2)
      release()
      release()
      assert.strictEqual(yield* group.inFlight, 1)
    })))

  it.effect("a tracked unit forked as the program's last step is counted and waited for, not lost", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const unit = Effect.andThen(Effect.sleep("200 millis"), Effect.sync(() => log.push("receipt sent")))
      const program = Effect.andThen(Quit.markRunning, unit.pipe(Quit.track("receipts"), Effect.forkDetach))
      const run = yield* Effect.forkChild(Shutdown.run(program), { startImmediately: true })
      yield* TestClock.adjust("200 millis")
      const report = yield* Fiber.join(run)
      assert.deepStrictEqual(log, ["receipt sent"])
      assert.deepInclude(report.rows.find((row) => row.name === "receipts"), { kind: "task", outcome: "done", inFlightAtEnd: 0 })
      assert.strictEqual(report.totalMillis, 200, "the exit waited for it")
    }).pipe(Effect.provide(Quit.layer({}, { phase: "starting" }))))

  it.effect("a group drains when its scope closes: stop first, then done when the last unit ends", () =>
    withQuit(
      Effect.gen(function*() {
        const order: Array<string> = []
        const scope = yield* Scope.make()
        const group = yield* Quit.group("http", {
          kind: "http",
          onStop: Effect.sync(() => order.push("listener closed"))
        }).pipe(Scope.provide(scope))
        yield* group.track(Effect.sleep("2 seconds").pipe(Effect.andThen(Effect.sync(() => order.push("request done")))))
          .pipe(Effect.forkChild({ startImmediately: true }))
        yield* Quit.fire("test")
        const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
        yield* TestClock.adjust("1999 millis")
        assert.isUndefined(closing.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(closing)
        assert.deepStrictEqual(order, ["listener closed", "request done"])
        const [row] = yield* rows
        assert.deepInclude(row, { name: "http", kind: "http", outcome: "done", millis: 2000, inFlightAtDrain: 1, inFlightAtEnd: 0 })
      }),
      { drainTimeout: "5 seconds" }
    ))

  it.effect("at the drain timeout a unit still running is interrupted and its finalizer runs", () => {
    const { logs, provide } = captureLogs()
    return withQuit(
      Effect.gen(function*() {
        const finalized: Array<string> = []
        const scope = yield* Scope.make()
        const group = yield* Quit.group("jobs", { kind: "worker", drainTimeout: "1 second" }).pipe(Scope.provide(scope))
        yield* group.track(Effect.sleep("1 minute")).pipe(
          Effect.ensuring(Effect.sync(() => finalized.push("unit finalizer"))),
          Effect.forkChild({ startImmediately: true })
        )
        yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
        const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
        yield* TestClock.adjust("999 millis")
        assert.deepStrictEqual(finalized, [])
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(closing)
        assert.deepStrictEqual(finalized, ["unit finalizer"])
        const [row] = yield* rows
        assert.deepInclude(row, { outcome: "cut", inFlightAtDrain: 1, inFlightAtEnd: 0, detail: "1 cut at the drain timeout" })
        assert.isTrue(logs.some((log) => log.level === "Warn" && log.text === "jobs (worker): cutting 1 in flight at the drain timeout"))
      }),
      { drainTimeout: "20 seconds" }
    ).pipe(provide)
  })

  it.effect("the cut interrupts the tracked unit only: the code after it runs, with the unit's exit", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const scope = yield* Scope.make()
      const group = yield* Quit.group("imports").pipe(Scope.provide(scope))
      const after = (name: string) => (exit: Exit.Exit<unknown>) =>
        Effect.sync(() => log.push(`${name}: after, ${Exit.isFailure(exit) ? "interrupted" : "done"}`))
      const callers = [
        yield* Effect.forkDetach(Effect.flatMap(Effect.exit(group.track(Effect.never)), after("group.track")), { startImmediately: true }),
        yield* Effect.forkDetach(Effect.flatMap(Effect.exit(Quit.track("receipts")(Effect.never)), after("Quit.track")), { startImmediately: true })
      ]
      yield* Quit.fire("test")
      // Both are cut at the drain deadline (1 s).
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(callers)
      yield* Scope.close(scope, Exit.void)
      assert.sameMembers(log, ["group.track: after, interrupted", "Quit.track: after, interrupted"])
    }).pipe((effect) => withQuit(effect, { drainTimeout: "1 second" })))

  it.effect("a work loop checking `closing` finishes its current unit and stops when the scope closes", () =>
    withQuit(Effect.gen(function*() {
      const done: Array<number> = []
      const scope = yield* Scope.make()
      const group = yield* Quit.group("loop", { kind: "worker" }).pipe(Scope.provide(scope))
      const loop = yield* Effect.gen(function*() {
        for (let n = 0; !(yield* group.isClosing); n++) {
          yield* group.track(Effect.sleep("1 second").pipe(Effect.andThen(Effect.sync(() => done.push(n)))))
        }
      }).pipe(Effect.forkDetach({ startImmediately: true }))
      yield* TestClock.adjust("2500 millis")
      assert.deepStrictEqual(done, [0, 1])
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(closing)
      yield* Fiber.join(loop)
      assert.deepStrictEqual(done, [0, 1, 2], "the unit in progress completed; no new one started")
      assert.deepInclude((yield* rows)[0], { outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0, millis: 500 })
    })))

  it.effect("a group closed while the program runs on leaves nothing: no row, no name, no metric series", () =>
    Effect.gen(function*() {
      // A group per tenant, each in a scope of its own, closed long before any quit event.
      for (let i = 0; i < 100; i++) {
        const scope = yield* Scope.make()
        const group = yield* Quit.group(`tenant ${i % 10}`).pipe(Scope.provide(scope))
        yield* group.track(Effect.void)
        yield* Scope.close(scope, Exit.void)
      }
      const series = (yield* Metric.snapshot).filter((metric) => metric.id.startsWith("effect_graceful_") && String(metric.attributes?.["group"]).startsWith("tenant"))
      const kept = yield* Quit.group("tenant 1")
      assert.deepStrictEqual(yield* rows, [{
        name: "tenant 1",
        kind: "group",
        outcome: "abandoned",
        millis: undefined,
        inFlightAtDrain: 0,
        inFlightAtEnd: 0,
        detail: "never began closing"
      }])
      assert.strictEqual(kept.name, "tenant 1", "the name is free again")
      assert.deepStrictEqual(series, [])
    }).pipe(Effect.scoped, withQuit))

  it.effect("names are unique in the report: a second group of one name gets a suffix", () =>
    withQuit(Effect.gen(function*() {
      yield* Quit.group("pool")
      yield* Quit.group("pool")
      assert.deepStrictEqual((yield* rows).map((row) => row.name), ["pool", "pool#2"])
    })))
})

describe("closers", () => {
  it.effect("a hung closer is abandoned at its timeout, a failing one is logged, the others still close", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      const closed: Array<string> = []
      const scope = yield* Scope.make("parallel")
      yield* Effect.all([
        Closer.add("cache", Effect.sync(() => closed.push("cache"))),
        Closer.add("broker", Effect.never, { timeout: "2 seconds" }),
        Closer.add("files", () => Promise.reject(new Error("disk gone"))),
        Closer.add("db", Effect.sleep("1 second").pipe(Effect.andThen(Effect.sync(() => closed.push("db")))))
      ]).pipe(Scope.provide(scope))
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(closed.sort(), ["cache", "db"])
      assert.isUndefined(closing.pollUnsafe(), "still waiting for the hung closer")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      const byName = Object.fromEntries((yield* rows).map((row) => [row.name, row]))
      assert.strictEqual(byName["cache"]!.outcome, "done")
      assert.strictEqual(byName["db"]!.outcome, "done")
      assert.strictEqual(byName["db"]!.millis, 1000)
      assert.deepInclude(byName["broker"], { outcome: "timed out", millis: 2000, detail: "abandoned after 2s" })
      assert.deepInclude(byName["files"], { outcome: "failed", detail: "disk gone" })
      assert.isTrue(logs.some((log) => log.text.includes("broker (closer) did not close within 2s; abandoned")))
      const failure = logs.find((log) => log.text.includes("files (closer) failed to close"))
      assert.isDefined(failure)
      assert.include(failure!.cause, "disk gone")
    }).pipe(provide))
  })

  it.effect("every form of close runs: an Effect, a function, a function returning a Promise or an Effect; a throw fails it", () =>
    Effect.gen(function*() {
      const closed: Array<string> = []
      const scope = yield* Scope.make()
      yield* Effect.gen(function*() {
        yield* Closer.add("effect", Effect.sync(() => closed.push("effect")))
        yield* Closer.add("function", () => void closed.push("function"))
        yield* Closer.add("promise", () => Promise.resolve().then(() => void closed.push("promise")))
        yield* Closer.add("function returning an Effect", () => Effect.sync(() => closed.push("function returning an Effect")))
        yield* Closer.add("throws", () => {
          throw new Error("socket gone")
        })
      }).pipe(Scope.provide(scope))
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      yield* Scope.close(scope, Exit.void)
      const byName = Object.fromEntries((yield* rows).map((row) => [row.name, row]))
      assert.sameMembers(closed, ["effect", "function", "promise", "function returning an Effect"])
      assert.strictEqual(byName["function returning an Effect"]!.outcome, "done")
      assert.deepInclude(byName["throws"], { outcome: "failed", detail: "socket gone" })
    }).pipe(withQuit))

  it.effect("closers follow the layer graph: a dependency closes after what uses it", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const closer = (name: string, ms: number) =>
        Layer.effectDiscard(
          Closer.add(name, Effect.sleep(ms).pipe(Effect.andThen(Effect.sync(() => order.push(name)))))
        )
      const App = Layer.mergeAll(closer("http", 300), closer("worker", 100)).pipe(Layer.provideMerge(closer("db", 10)))
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(App, scope)
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(order, ["worker", "http", "db"])
    }).pipe(withQuit))
})
