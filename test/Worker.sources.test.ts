/**
 * What a quit can drop, source by source: a pool of one worker is stopped by
 * the quit event after 3 units, and every item is accounted for — processed,
 * still in its source, or dropped — against what each source's doc promises.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Metric, Option, Queue, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Quit } from "../src/index.ts"
import * as Worker from "../src/Worker.ts"
import { rows } from "./support/quit.ts"

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, Quit.layer()).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))

/** Lets woken fibers run, without moving the clock. */
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

const ITEMS = Array.from({ length: 10 }, (_, n) => n)

/**
 * Runs one worker on `source` over a queue of 10 items; the third unit fires
 * the quit event; the pool's scope then closes. Returns the items processed,
 * those after the quit event, and those left in the queue.
 */
const quitAfterThree = (source: (queue: Queue.Queue<number>) => Worker.Source<number>, unitMillis = 0) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<number>()
    yield* Queue.offerAll(queue, ITEMS)
    const processed: Array<number> = []
    let afterQuit = 0
    const third = yield* Deferred.make<void>()
    const scope = yield* Scope.make()
    yield* Worker.consume("items", source(queue), (n) =>
      Effect.gen(function*() {
        if (unitMillis > 0) yield* Effect.sleep(unitMillis)
        if (yield* Quit.hasFired) afterQuit++
        processed.push(n)
        if (processed.length === 3) yield* Quit.fire("test").pipe(Effect.andThen(Deferred.succeed(third, undefined)))
      }), { workers: 1 }).pipe(Scope.provide(scope))
    // The scope closes once the quit event has fired (closing it first would stop the pool before any unit).
    yield* Effect.forkChild(TestClock.adjust(unitMillis * 3), { startImmediately: true })
    yield* Deferred.await(third)
    const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
    yield* TestClock.adjust(unitMillis * 20)
    yield* Fiber.join(closing)
    const left = yield* Queue.clear(queue)
    const row = (yield* rows).find((r) => r.name === "items")
    return { processed, afterQuit, left, outcome: row?.outcome }
  })

describe("Worker.fromStream: a quit drops nothing the stream has emitted or has ready", () => {
  const streams = {
    "Stream.fromQueue (one chunk of everything queued)": (queue: Queue.Queue<number>) => Stream.fromQueue(queue),
    "Stream.fromQueue then Stream.rechunk(1)": (queue: Queue.Queue<number>) =>
      Stream.fromQueue(queue).pipe(Stream.rechunk(1))
  }
  for (const [name, stream] of Object.entries(streams)) {
    for (const unitMillis of [0, 100]) {
      it.effect(`${name}, buffer 1, units of ${unitMillis} ms, quit after 3: no item lost (at most buffer = 1)`, () =>
        withQuit(Effect.gen(function*() {
          const { afterQuit, left, outcome, processed } = yield* quitAfterThree(
            (queue) => Worker.fromStream(stream(queue), { buffer: 1 }),
            unitMillis
          )
          const lost = ITEMS.length - processed.length - left.length
          assert.isAtMost(lost, 1, `processed ${processed.length}, left in the queue ${left.length}`)
          // The stream took all ten at its first pull: they are processed, in order, after the quit too.
          assert.deepStrictEqual(processed, ITEMS)
          assert.strictEqual(afterQuit, 7)
          assert.strictEqual(outcome, "done")
        })))
    }
  }

  it.effect("4 workers on a rechunked stream of 100: after the quit event they process the rest, all within the drain", () =>
    withQuit(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number>()
      yield* Queue.offerAll(queue, Array.from({ length: 100 }, (_, n) => n))
      const processed: Array<number> = []
      let drained = false
      let afterDrain = 0
      const scope = yield* Scope.make()
      yield* Worker.consume(
        "four",
        Worker.fromStream(Stream.fromQueue(queue).pipe(Stream.rechunk(1))),
        (n) =>
          Effect.sleep((n % 3 + 1) * 10).pipe(Effect.andThen(Effect.sync(() => {
            if (drained) afterDrain++
            processed.push(n)
          }))),
        { workers: 4 }
      ).pipe(Scope.provide(scope))
      yield* TestClock.adjust("55 millis")
      assert.isBelow(processed.length, 30)
      yield* Quit.fire("test")
      const closing = yield* Effect.forkChild(
        Effect.andThen(Scope.close(scope, Exit.void), Effect.sync(() => drained = true)),
        { startImmediately: true }
      )
      for (let i = 0; i < 100; i++) yield* TestClock.adjust("10 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual([...processed].sort((a, b) => a - b), Array.from({ length: 100 }, (_, n) => n))
      assert.strictEqual(afterDrain, 0, "no unit ran after the drain ended")
      assert.deepInclude((yield* rows).find((r) => r.name === "four"), { outcome: "done", inFlightAtEnd: 0 })
    })))

  it.effect("a pull waiting at the quit event is interrupted: what is offered later stays in the queue", () =>
    withQuit(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number>()
      const processed: Array<number> = []
      const scope = yield* Scope.make()
      const pool = yield* Worker.consume(
        "idle",
        Worker.fromStream(Stream.fromQueue(queue)),
        (n) => Effect.sync(() => processed.push(n)),
        { workers: 2 }
      ).pipe(Scope.provide(scope))
      yield* Queue.offerAll(queue, [1, 2])
      yield* settle
      assert.deepStrictEqual(processed, [1, 2])
      yield* Quit.fire("test")
      yield* settle
      assert.strictEqual(yield* pool.running, 0, "both workers stopped at once")
      yield* Queue.offerAll(queue, [3, 4])
      yield* Scope.close(scope, Exit.void)
      yield* settle
      assert.deepStrictEqual(processed, [1, 2])
      assert.deepStrictEqual(yield* Queue.clear(queue), [3, 4])
    })))

  it.effect("an item inside a Stream.mapEffect still under way at the quit event is dropped, and only it", () =>
    withQuit(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number>()
      yield* Queue.offerAll(queue, [1, 2, 3])
      const processed: Array<number> = []
      const scope = yield* Scope.make()
      // Each item takes 1 s inside the stream, before the pool sees it.
      const stream = Stream.fromQueue(queue).pipe(
        Stream.rechunk(1),
        Stream.mapEffect((n) => Effect.as(Effect.sleep("1 second"), n))
      )
      yield* Worker.consume("mapped", Worker.fromStream(stream), (n) => Effect.sync(() => processed.push(n)))
        .pipe(Scope.provide(scope))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(processed, [1])
      yield* TestClock.adjust("500 millis")
      yield* Quit.fire("test")
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(processed, [1], "item 2 was inside the mapEffect; item 3 inside the rechunk behind it")
      assert.deepStrictEqual(yield* Queue.clear(queue), [], "Stream.fromQueue took all three at its first pull")
    })))

  it.effect("a stream that always has an item ready keeps its pool until the drain timeout, which cuts it", () =>
    withQuit(Effect.gen(function*() {
      const processed: Array<number> = []
      const scope = yield* Scope.make()
      yield* Worker.consume(
        "endless",
        Worker.fromStream(Stream.iterate(0, (n) => n + 1)),
        (n) => Effect.as(Effect.sleep("100 millis"), n).pipe(Effect.tap(() => Effect.sync(() => processed.push(n)))),
        { drainTimeout: "1 second" }
      ).pipe(Scope.provide(scope))
      yield* TestClock.adjust("250 millis")
      yield* Quit.fire("test")
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      assert.strictEqual(processed.length, 12, "2 before the quit event, 10 during the drain timeout")
      assert.deepInclude((yield* rows).find((r) => r.name === "endless"), { outcome: "cut" })
    })))
})

describe("Worker.fromQueue: a quit drops nothing", () => {
  it.effect("quit after 3 units: 3 processed, the other 7 still in the queue", () =>
    withQuit(Effect.gen(function*() {
      const { left, processed } = yield* quitAfterThree((queue) => Worker.fromQueue(queue))
      assert.deepStrictEqual(processed, [0, 1, 2])
      assert.deepStrictEqual(left, [3, 4, 5, 6, 7, 8, 9])
    })))
})

describe("Worker.poll: a quit drops nothing a poll has returned", () => {
  it.effect("quit after 3 units: 3 processed, the other 7 never polled", () =>
    withQuit(Effect.gen(function*() {
      const { left, processed } = yield* quitAfterThree((queue) => Worker.poll(Queue.poll(queue), { interval: "1 second" }))
      assert.deepStrictEqual(processed, [0, 1, 2])
      assert.deepStrictEqual(left, [3, 4, 5, 6, 7, 8, 9])
    })))

  it.effect("a poll cut while it waits returns nothing; the interval is cut too; what arrives later stays", () =>
    withQuit(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<number>()
      const processed: Array<number> = []
      const scope = yield* Scope.make()
      // One poller waits in its interval, the other inside a slow poll.
      let slow = 0
      const poll = Effect.suspend(() =>
        slow++ === 0 ? Effect.andThen(Effect.sleep("1 hour"), Queue.poll(queue)) : Queue.poll(queue)
      )
      const pool = yield* Worker.consume("poll", Worker.poll(poll, { interval: "1 hour" }), (n) =>
        Effect.sync(() => processed.push(n)), { workers: 2 }).pipe(Scope.provide(scope))
      yield* settle
      yield* Quit.fire("test")
      yield* settle
      assert.strictEqual(yield* pool.running, 0)
      yield* Queue.offer(queue, 1)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("2 hours")
      assert.deepStrictEqual(processed, [])
      assert.deepStrictEqual(yield* Queue.poll(queue), Option.some(1))
    })))
})
