/**
 * A source that fetches ahead opens an `Intake`: the pool calls its `halt`
 * once, synchronously, the moment it stops taking — at the quit event, or
 * when its scope closes first (`until: "close"`) — while a unit in flight
 * still runs; the source's scope closes only after the pool has drained.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Metric, Queue, Scope } from "effect"
import { Quit } from "../src/index.ts"
import * as Worker from "../src/Worker.ts"

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, Quit.layer()).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

/** A source over a queue that logs its halt and its close. */
const recording = (queue: Queue.Queue<string>, log: Array<string>): Worker.Source<string> => ({
  open: Effect.gen(function*() {
    yield* Effect.addFinalizer(() => Effect.sync(() => log.push("source closed")))
    return {
      take: Queue.take(queue),
      halt: () => void log.push("halt")
    }
  })
})

describe("Worker.Intake", () => {
  it.live("halt is called once at the quit event, while the unit in flight runs; the source closes after the drain", () =>
    withQuit(Effect.gen(function*() {
      const log: Array<string> = []
      const queue = yield* Queue.unbounded<string>()
      const release = yield* Deferred.make<void>()
      const scope = yield* Scope.make()
      yield* Scope.provide(
        Worker.consume("ahead", recording(queue, log), (item) =>
          Effect.andThen(Deferred.await(release), Effect.sync(() => void log.push(`done ${item}`)))),
        scope
      )
      yield* Queue.offer(queue, "a")
      yield* settle
      yield* Quit.fire("test")
      yield* Quit.fire("again")
      assert.deepStrictEqual(log, ["halt"], "halted at once, the unit still running")
      yield* Deferred.succeed(release, undefined)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(log, ["halt", "done a", "source closed"])
    })))

  it.live("with until: close, halt waits for the scope to close", () =>
    withQuit(Effect.gen(function*() {
      const log: Array<string> = []
      const queue = yield* Queue.unbounded<string>()
      const scope = yield* Scope.make()
      yield* Scope.provide(Worker.consume("renewals", recording(queue, log), () => Effect.void, { until: "close" }), scope)
      yield* Quit.fire("test")
      yield* settle
      assert.deepStrictEqual(log, [], "the quit event alone does not halt it")
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(log, ["halt", "source closed"])
    })))
})
