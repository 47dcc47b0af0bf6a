import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric, Option, Queue, Schedule, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Closer, type Options, Quit, Shutdown } from "../src/index.ts"
import * as Worker from "../src/Worker.ts"
import { captureLogs } from "./support/logs.ts"
import { current, rows } from "./support/quit.ts"

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>, options: Parameters<typeof Quit.layer>[0] = {}) =>
  Effect.provide(effect, Quit.layer(options)).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))

const row = (name: string) => Effect.map(rows, (all) => all.find((r) => r.name === name)!)

/** The value of a metric with these attributes, from the current registry. */
const metric = (id: string, attributes: Record<string, string>) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.find((s) => s.id === id && JSON.stringify(s.attributes) === JSON.stringify(attributes))
    if (found === undefined) return undefined
    return found.type === "Gauge" ? found.state.value : found.type === "Counter" ? found.state.count : undefined
  })

/** Lets woken fibers run, without moving the clock. */
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

const counts = (worker: Worker.Worker) => Effect.all({ running: worker.running, inFlight: worker.inFlight })

describe("workers: a process function that throws", () => {
  it.effect("throwing instead of returning an Effect fails that unit under the policy: logged, and the worker goes on", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<string>()
      const done: Array<string> = []
      const process = (item: string): Effect.Effect<void> => {
        if (item === "bad") throw new Error("no such item")
        return Effect.sync(() => void done.push(item))
      }
      const worker = yield* Worker.consume("items", Worker.fromQueue(queue), process)
      yield* Queue.offerAll(queue, ["a", "bad", "b"])
      yield* settle
      assert.deepStrictEqual(done, ["a", "b"], "the queue did not stall")
      assert.strictEqual(yield* worker.running, 1, "the worker did not die")
      const error = logs.find((log) => log.level === "Error")
      assert.strictEqual(error?.text, "items: a unit failed")
      assert.include(error?.cause, "no such item")
    }).pipe(Effect.scoped)).pipe(provide)
  })
})

describe("workers: finish the current unit, cut the waits", () => {
  it.effect("a loop finishes the unit in progress when its scope closes, then stops; counts are right at each step", () =>
    withQuit(Effect.gen(function*() {
      const done: Array<number> = []
      let next = 0
      const unit = Effect.suspend(() => {
        const n = next++
        return Effect.sleep("1 second").pipe(Effect.andThen(Effect.sync(() => done.push(n))))
      })
      const scope = yield* Scope.make()
      const worker = yield* Worker.loop("ticker", unit, { workers: 2 }).pipe(Scope.provide(scope))
      assert.deepStrictEqual(yield* counts(worker), { running: 2, inFlight: 2 })
      yield* TestClock.adjust("2500 millis")
      assert.deepStrictEqual(done, [0, 1, 2, 3])
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("499 millis")
      assert.isUndefined(closing.pollUnsafe(), "still draining")
      assert.deepStrictEqual(yield* counts(worker), { running: 2, inFlight: 2 })
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(done, [0, 1, 2, 3, 4, 5], "the units in progress completed; no new one started")
      assert.deepStrictEqual(yield* counts(worker), { running: 0, inFlight: 0 })
      assert.deepInclude(yield* row("ticker"), { kind: "worker", outcome: "done", millis: 500, inFlightAtDrain: 2, inFlightAtEnd: 0 })
    })))

  it.effect("after the quit event the unit in progress completes and the report says done", () =>
    withQuit(
      Effect.gen(function*() {
        const log: Array<string> = []
        const unit = Effect.sleep("1 second").pipe(
          Effect.andThen(Effect.sync(() => log.push("unit done"))),
          Effect.onInterrupt(() => Effect.sync(() => log.push("unit interrupted")))
        )
        const running = yield* Shutdown.run(Shutdown.launch(Worker.layerLoop("jobs", unit))).pipe(
          Effect.forkChild({ startImmediately: true })
        )
        yield* TestClock.adjust("2500 millis")
        yield* Quit.fire(Quit.signal("SIGTERM"))
        yield* TestClock.adjust("499 millis")
        assert.deepStrictEqual(log, ["unit done", "unit done"])
        yield* TestClock.adjust("1 millis")
        const report = yield* Fiber.join(running)
        assert.deepStrictEqual(log, ["unit done", "unit done", "unit done"])
        assert.deepInclude(report, { reason: "SIGTERM", ending: "graceful", exitCode: 0, totalMillis: 500 })
        assert.deepInclude(report.rows[0], { name: "jobs", outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0 })
      })
    ))

  it.effect("the quit event stops intake at once, during the drain delay; units in progress complete", () =>
    withQuit(
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<string>()
        const handles: Record<string, Worker.Worker> = {}
        let ticks = 0
        const keep = (name: string, make: Effect.Effect<Worker.Worker, Options.InvalidOption, Quit.Quit | Scope.Scope>) =>
          Layer.effectDiscard(Effect.map(make, (worker) => void (handles[name] = worker)))
        const program = Shutdown.launch(Layer.mergeAll(
          keep("consumer", Worker.consume("consumer", Worker.fromQueue(queue), () => Effect.sleep("1 second"), { workers: 3 })),
          keep("ticker", Worker.loop("ticker", Effect.sleep("1 second"))),
          keep("housekeeping", Worker.loop("housekeeping", Effect.sync(() => ticks++), { spaced: "1 second", until: "close" }))
        ))
        const running = yield* Shutdown.run(program).pipe(Effect.forkChild({ startImmediately: true }))
        yield* TestClock.adjust("500 millis")
        yield* Queue.offer(queue, "first")
        yield* settle
        yield* Quit.fire(Quit.signal("SIGTERM"))
        yield* settle
        assert.strictEqual((yield* Quit.phase).phase, "draining")
        assert.deepStrictEqual(yield* counts(handles["consumer"]!), { running: 1, inFlight: 1 }, "idle consumers stopped")
        assert.deepStrictEqual(yield* counts(handles["ticker"]!), { running: 1, inFlight: 1 })
        yield* Queue.offer(queue, "after quit")
        yield* TestClock.adjust("500 millis")
        assert.deepStrictEqual(yield* counts(handles["ticker"]!), { running: 0, inFlight: 0 }, "its unit ended at 1 s")
        assert.deepStrictEqual(yield* counts(handles["consumer"]!), { running: 1, inFlight: 1 })
        yield* TestClock.adjust("500 millis")
        assert.deepStrictEqual(yield* counts(handles["consumer"]!), { running: 0, inFlight: 0 }, "its unit ended at 1.5 s")
        assert.strictEqual(yield* Queue.size(queue), 1, "nothing taken after the quit event")
        yield* TestClock.adjust("4000 millis")
        const report = yield* Fiber.join(running)
        assert.strictEqual(ticks, 6, "until: close keeps running through the drain delay")
        assert.strictEqual(yield* handles["housekeeping"]!.running, 0)
        assert.deepStrictEqual(report.rows.map((r) => [r.name, r.outcome, r.inFlightAtDrain]), [
          ["consumer", "done", 1],
          ["ticker", "done", 1],
          ["housekeeping", "done", 0]
        ])
      }),
      { drainDelay: "5 seconds" }
    ))

  it.effect("waiting between units is cut at once: a take, a poll interval, a pause, a retry backoff", () =>
    withQuit(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const queue = yield* Queue.unbounded<number>()
      let polls = 0
      const workers = yield* Effect.all([
        Worker.consume("take", Worker.fromQueue(queue), () => Effect.void, { workers: 3 }),
        Worker.consume("poll", Worker.poll(Effect.sync(() => (polls++, Option.none<number>())), { interval: "1 hour" }), () => Effect.void),
        Worker.loop("pause", Effect.void, { spaced: "1 hour" }),
        Worker.loop("backoff", Effect.fail("boom"), { onFailure: Worker.retry(Schedule.spaced("1 hour")) })
      ]).pipe(Scope.provide(scope))
      yield* settle
      assert.deepStrictEqual(yield* Effect.forEach(workers, (w) => w.running), [3, 1, 1, 1])
      assert.strictEqual(polls, 1)
      // No clock moves: closing can only complete if every wait was cut.
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* Effect.forEach(workers, (w) => w.running), [0, 0, 0, 0])
      const all = yield* rows
      assert.deepStrictEqual(all.map((r) => [r.name, r.outcome, r.millis]), [
        ["take", "done", 0],
        ["poll", "done", 0],
        ["pause", "done", 0],
        ["backoff", "done", 0]
      ])
      assert.strictEqual(polls, 1, "no poll after closing")
    }).pipe(captureLogs().provide)))

  it.effect("at the drain timeout a unit still running is interrupted and its finalizer runs", () =>
    withQuit(Effect.gen(function*() {
      const finalized: Array<string> = []
      const scope = yield* Scope.make()
      const worker = yield* Worker.loop(
        "slow",
        Effect.sleep("1 minute").pipe(Effect.ensuring(Effect.sync(() => finalized.push("unit finalizer")))),
        { drainTimeout: "1 second" }
      ).pipe(Scope.provide(scope))
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual(finalized, [])
      assert.deepStrictEqual(yield* counts(worker), { running: 1, inFlight: 1 })
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(finalized, ["unit finalizer"])
      assert.deepStrictEqual(yield* counts(worker), { running: 0, inFlight: 0 })
      assert.deepInclude(yield* row("slow"), { outcome: "cut", inFlightAtDrain: 1, inFlightAtEnd: 0, detail: "1 cut at the drain timeout" })
    }).pipe(captureLogs().provide)))

  it.effect("an item offered as closing begins is processed or left in the queue, never lost", () =>
    withQuit(Effect.gen(function*() {
      const processed: Array<number> = []
      const queue = yield* Queue.unbounded<number>()
      const scope = yield* Scope.make()
      yield* Worker.consume("edge", Worker.fromQueue(queue), (n) => Effect.sync(() => processed.push(n)), { workers: 4 })
        .pipe(Scope.provide(scope))
      for (let n = 0; n < 4; n++) Queue.offerUnsafe(queue, n)
      yield* Scope.close(scope, Exit.void)
      const left = yield* Queue.size(queue)
      assert.strictEqual(processed.length + left, 4)
    })))
})

describe("pools and counting", () => {
  it.effect("10,000 workers start, share the work, and drain the moment the last unit ends", () =>
    withQuit(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number>()
      const processed = new Set<number>()
      const scope = yield* Scope.make()
      const pool = yield* Worker.consume(
        "many",
        Worker.fromQueue(queue),
        (n) => Effect.sleep("1 second").pipe(Effect.andThen(Effect.sync(() => processed.add(n)))),
        { workers: 10_000 }
      ).pipe(Scope.provide(scope))
      assert.deepStrictEqual(yield* counts(pool), { running: 10_000, inFlight: 0 })
      assert.strictEqual(yield* metric("effect_graceful_workers_running", { worker: "many" }), 10_000)
      yield* Queue.offerAll(queue, Array.from({ length: 500 }, (_, n) => n))
      yield* settle
      assert.deepStrictEqual(yield* counts(pool), { running: 10_000, inFlight: 500 })
      assert.strictEqual(yield* metric("effect_graceful_in_flight", { group: "many" }), 500)
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* settle
      assert.deepStrictEqual(yield* counts(pool), { running: 500, inFlight: 500 }, "idle workers stopped at once")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      assert.strictEqual(processed.size, 500)
      assert.deepStrictEqual(yield* counts(pool), { running: 0, inFlight: 0 })
      assert.strictEqual(yield* metric("effect_graceful_workers_running", { worker: "many" }), 0)
      assert.strictEqual(yield* metric("effect_graceful_in_flight", { group: "many" }), 0)
      assert.strictEqual(yield* metric("effect_graceful_units_started_total", { group: "many" }), 500)
      assert.deepInclude(yield* row("many"), { outcome: "done", millis: 1000, inFlightAtDrain: 500, inFlightAtEnd: 0 })
    })))

  it.effect("a stream source: its items are shared by the pool; the workers stop when it ends", () =>
    withQuit(Effect.gen(function*() {
      const seen: Array<number> = []
      const pool = yield* Worker.consume(
        "stream",
        Worker.fromStream(Stream.range(1, 10)),
        (n) => Effect.sleep("100 millis").pipe(Effect.andThen(Effect.sync(() => seen.push(n)))),
        { workers: 3 }
      )
      const stopped = yield* Effect.forkChild(pool.awaitStopped, { startImmediately: true })
      yield* TestClock.adjust("399 millis")
      assert.strictEqual(seen.length, 9)
      assert.isUndefined(stopped.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(stopped)
      assert.deepStrictEqual([...seen].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      assert.deepStrictEqual(yield* counts(pool), { running: 0, inFlight: 0 })
      assert.isFalse(yield* Quit.hasFired)
    })))
})

describe("failure policies", () => {
  it.effect("default: a failing unit is logged with its cause and the worker takes the next item", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      const processed: Array<number> = []
      const gaveUp: Array<number> = []
      const queue = yield* Queue.unbounded<number>()
      const pool = yield* Worker.consume(
        "parse",
        Worker.fromQueue(queue),
        (n) => n === 2 ? Effect.fail(`bad item ${n}`) : Effect.sync(() => processed.push(n)),
        { onGiveUp: (n) => Effect.sync(() => gaveUp.push(n)) }
      )
      yield* Queue.offerAll(queue, [1, 2, 3])
      yield* settle
      assert.deepStrictEqual(processed, [1, 3])
      assert.deepStrictEqual(gaveUp, [2])
      assert.strictEqual(yield* pool.running, 1)
      const failure = logs.find((log) => log.level === "Error" && log.text === "parse: a unit failed")
      assert.include(failure?.cause, "bad item 2")
      assert.strictEqual(yield* metric("effect_graceful_unit_failures_total", { worker: "parse" }), 1)
      assert.isFalse(yield* Quit.hasFired)
    }).pipe(provide))
  })

  it.effect("retry: the same item runs again on the Schedule, then succeeds", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      const attempts: Array<number> = []
      let failuresLeft = 2
      const unit = Effect.clockWith((clock) => Effect.sync(() => attempts.push(clock.currentTimeMillisUnsafe()))).pipe(
        Effect.andThen(Effect.suspend(() => failuresLeft-- > 0 ? Effect.fail("flaky") : Effect.void))
      )
      const queue = yield* Queue.unbounded<string>()
      yield* Worker.consume("flaky", Worker.fromQueue(queue), () => unit, {
        onFailure: Worker.retry(Schedule.exponential("1 second"))
      })
      yield* Queue.offer(queue, "item")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(attempts, [0, 1000, 3000], "backoff 1 s, then 2 s")
      assert.strictEqual(logs.filter((log) => log.text === "flaky: a unit failed; retrying").length, 2)
      assert.isFalse(logs.some((log) => log.level === "Error"))
    }).pipe(provide))
  })

  it.effect("retry then fail: when the Schedule is exhausted the app fails; failApp fires the quit event", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      let attempts = 0
      const pool = yield* Worker.loop("payments", Effect.suspend(() => (attempts++, Effect.fail(new Error("card declined")))), {
        onFailure: Worker.retry(Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 2 })), { then: "fail" })
      })
      yield* TestClock.adjust("1 second")
      assert.isFalse(yield* Quit.hasFired)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(attempts, 3)
      const reason = yield* Quit.fired
      assert.deepInclude(reason, { _tag: "Failure", reason: "payments: a unit failed" })
      assert.isTrue((yield* current).failed, "the exit code will be 1")
      assert.strictEqual(yield* pool.running, 0)
      assert.isTrue(logs.some((log) => log.text === "payments: a unit failed; failing the app" && log.cause.includes("card declined")))

      const other = yield* Worker.loop("other", Effect.die("bug"), { onFailure: Worker.failApp })
      yield* settle
      assert.strictEqual(yield* other.running, 0, "failApp stops the worker at its first failure")
    }).pipe(provide))
  })

  it.effect("a failing source fails the app", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      yield* Worker.consume("feed", Worker.fromStream(Stream.fail("connection lost")), () => Effect.void)
      yield* settle
      assert.deepInclude(yield* Quit.fired, { _tag: "Failure", reason: "feed: its source failed" })
      assert.isTrue(logs.some((log) => log.text === "feed: its source failed; failing the app"))
    }).pipe(provide))
  })
})

describe("layers", () => {
  it.effect("a pool closes before the layer it depends on: the database outlives its last unit", () =>
    withQuit(Effect.gen(function*() {
      const order: Array<string> = []
      let open = true
      const Db = Layer.effectDiscard(Closer.add("db", Effect.sync(() => {
        open = false
        order.push("db closed")
      })))
      const write = Effect.sleep("1 second").pipe(
        Effect.andThen(Effect.sync(() => order.push(open ? "unit wrote" : "unit wrote to a closed db")))
      )
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Worker.layerLoop("writer", write).pipe(Layer.provideMerge(Db)), scope)
      yield* TestClock.adjust("500 millis")
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(order, ["unit wrote", "db closed"])
    })))
})
