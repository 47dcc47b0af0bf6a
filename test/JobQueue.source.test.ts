/**
 * The job pool's source against a store of its own making (claims return
 * what the test says), so that the moments that matter can be set up
 * exactly: jobs in hand at the quit event, a claim still running at it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Metric, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Quit } from "../src/index.ts"
import * as consumer from "../src/internal/jobs/consumer.ts"
import type { Job } from "../src/internal/jobs/store.ts"
import * as Worker from "../src/Worker.ts"

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, Quit.layer()).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

const job = (id: number): Job => ({ id, payload: `job ${id}`, attempts: 1, claim: "token" })

/** A store whose claims hand out `batches` in turn (then nothing), and which records releases with the time. */
const fakeStore = (batches: Array<ReadonlyArray<Job>>, claimGate?: Deferred.Deferred<void>) => {
  const released: Array<{ readonly ids: ReadonlyArray<number>; readonly at: string }> = []
  const events: Array<string> = []
  return {
    released,
    events,
    store: {
      claim: () =>
        Effect.gen(function*() {
          events.push("claim")
          if (claimGate !== undefined) yield* Deferred.await(claimGate)
          return batches.shift() ?? []
        }),
      releaseUnstarted: (jobs: ReadonlyArray<Job>) =>
        Effect.sync(() => {
          released.push({ ids: jobs.map((j) => j.id), at: events.at(-1) ?? "" })
          events.push(`released ${jobs.map((j) => j.id).join(",")}`)
          return jobs.length
        })
    }
  }
}

const source = (store: ReturnType<typeof fakeStore>["store"]): Worker.Source<Job> => ({
  open: consumer.open(store, { batch: 10, interval: Duration.seconds(1), wake: Effect.never })
})

describe("the job pool's source", () => {
  it.effect("jobs in hand at the quit event go back at once, while the units in progress still run; none of them runs", () =>
    withQuit(Effect.gen(function*() {
      const fake = fakeStore([[job(1), job(2), job(3)]])
      const processed: Array<number> = []
      const scope = yield* Scope.make()
      yield* Worker.consume("jobs", source(fake.store), (j) =>
        Effect.sleep("1 second").pipe(Effect.andThen(Effect.sync(() => {
          processed.push(j.id)
          fake.events.push(`done ${j.id}`)
        }))), { workers: 1 }).pipe(Scope.provide(scope))
      yield* settle
      yield* Quit.fire("test")
      yield* settle
      assert.deepStrictEqual(fake.events, ["claim", "released 2,3"], "released at the quit event, job 1 still running")
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void), { startImmediately: true })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(processed, [1])
      assert.deepStrictEqual(fake.events, ["claim", "released 2,3", "done 1"])
    })))

  it.effect("a claim running at the quit event is left to finish; its jobs go back at once, none runs", () =>
    withQuit(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const fake = fakeStore([[job(1), job(2)]], gate)
      const processed: Array<number> = []
      const scope = yield* Scope.make()
      yield* Worker.consume("jobs", source(fake.store), (j) => Effect.sync(() => processed.push(j.id)), { workers: 2 })
        .pipe(Scope.provide(scope))
      yield* settle
      assert.deepStrictEqual(fake.events, ["claim"])
      yield* Quit.fire("test")
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(processed, [])
      assert.deepStrictEqual(fake.events, ["claim", "released 1,2"])
    })))
})
