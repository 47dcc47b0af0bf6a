/**
 * The source of a job pool: one claimer at a time, in a fiber of the
 * source's scope, claims up to as many jobs as workers wait for it (at most
 * `batch`) in one statement, and the workers take them one by one. An empty
 * claim waits `interval` before the next — or less, when `wake` completes
 * (an enqueue in this process, or a notification from any machine on
 * PostgreSQL).
 *
 * When the pool halts (the quit event), claims in hand that no worker has
 * started are given back at once (their attempt uncounted), and no claim
 * starts again. Whatever else this process still holds — a claim that was in
 * flight at the halt, a job cut at the drain deadline — is given back when
 * the queue closes.
 *
 * @internal
 */
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Option, Scope } from "effect"
import type { Taker } from "../worker/runner.ts"
import type { Job, Store } from "./store.ts"

/** @internal */
export interface SourceOptions {
  readonly batch: number
  readonly interval: Duration.Duration
  readonly wake: Effect.Effect<void>
}

/** Opens the source in the current scope (the pool's source scope). @internal */
export const open = (store: Pick<Store, "claim" | "releaseUnstarted">, options: SourceOptions): Effect.Effect<Taker<Job, never>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const hand: Array<Job> = []
    let waiting = 0
    let halted = false
    let claimer: { readonly fiber: Fiber.Fiber<void>; readonly settled: Deferred.Deferred<void> } | undefined
    let releasing: Fiber.Fiber<number, unknown> | undefined

    // Claims until it gets jobs (a claim retries its own failures), then hands them over. The wake is
    // listened for from before the claim: an enqueue during an empty claim ends the pause at once.
    const claimLoop: Effect.Effect<void> = Effect.gen(function*() {
      while (true) {
        const woken = yield* Effect.forkChild(options.wake, { startImmediately: true })
        const jobs = yield* Effect.suspend(() => store.claim(Math.min(options.batch, Math.max(1, waiting))))
        if (jobs.length > 0) {
          yield* Fiber.interrupt(woken)
          hand.push(...jobs)
          return
        }
        yield* Effect.raceFirst(Effect.sleep(options.interval), Fiber.join(woken))
        yield* Fiber.interrupt(woken)
      }
    }).pipe(Effect.catchCause(() => Effect.void)) // a claim fails only when interrupted: it retries everything else

    const startClaimer = Effect.suspend(() => {
      const settled = Deferred.makeUnsafe<void>()
      const body = Effect.ensuring(claimLoop, Effect.sync(() => {
        claimer = undefined
        Deferred.doneUnsafe(settled, Exit.void)
      }))
      return Effect.map(Effect.forkIn(body, scope, { startImmediately: true }), (fiber) => {
        if (fiber.pollUnsafe() === undefined) claimer = { fiber, settled }
        return settled
      })
    })

    const take: Effect.Effect<Job, Cause.Done> = Effect.suspend(() => {
      const job = hand.shift()
      if (job !== undefined) return Effect.succeed(job)
      if (halted) return Effect.fail(Cause.Done())
      waiting++
      const settled = claimer === undefined ? startClaimer : Effect.succeed(claimer.settled)
      return Effect.flatMap(settled, Deferred.await).pipe(
        Effect.ensuring(Effect.sync(() => waiting--)),
        Effect.andThen(take)
      )
    })

    // Gives back, at once, what is in hand: jobs claimed that no worker has started.
    const release = Effect.suspend(() => {
      const unstarted = hand.splice(0)
      if (unstarted.length === 0) return Effect.succeed(0)
      return store.releaseUnstarted(unstarted).pipe(
        Effect.tap((n) => Effect.logInfo(`job queue: released ${n} claimed jobs not started to pending`)),
        Effect.tapError((error) => Effect.logWarning("job queue: releasing claims not started failed; they are released when the queue closes", error))
      )
    })

    // Read by the workers once the pool has halted: a job source has nothing ready to hand out after it.
    const ready: Effect.Effect<Option.Option<Job>> = Effect.suspend(() => {
      if (halted) return Effect.succeedNone
      halted = true
      const stopClaimer = claimer === undefined ? Effect.void : Effect.asVoid(Fiber.interrupt(claimer.fiber))
      // Detached, and joined when the source closes: closing the scope must not cut it.
      return stopClaimer.pipe(
        Effect.andThen(Effect.forkDetach(release, { startImmediately: true })),
        Effect.map((fiber) => {
          releasing = fiber
          return Option.none()
        })
      )
    })

    // The source closes after the pool has drained: a release under way ends first; what is still in hand goes back.
    yield* Scope.addFinalizer(scope, Effect.suspend(() => {
      halted = true
      const pending = releasing === undefined ? Effect.void : Effect.ignore(Fiber.join(releasing))
      return Effect.andThen(pending, Effect.ignore(release))
    }))

    return { take, ready }
  })
