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
import type { Intake } from "../worker/runner.ts"
import type { Job, Store } from "./store.ts"

/** @internal */
export interface SourceOptions {
  readonly batch: number
  readonly interval: Duration.Duration
  readonly wake: Effect.Effect<void>
}

/** Opens the source in the current scope (the pool's source scope). @internal */
export const open = (store: Pick<Store, "claim" | "releaseUnstarted">, options: SourceOptions): Effect.Effect<Intake<Job, never>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const hand: Array<Job> = []
    let waiting = 0
    let halted = false
    let claimer: { readonly fiber: Fiber.Fiber<void>; readonly settled: Deferred.Deferred<void> } | undefined
    // At the halt, a claim under way is left to finish and its jobs go back at once (interrupted, its rows
    // would stay claimed until the queue closes); a pause between claims is cut. Closing the source cuts both.
    let claiming = false
    let releasing: Fiber.Fiber<number, unknown> | undefined

    // Claims until it gets jobs (a claim retries its own failures), then hands them over. The wake is
    // listened for from before the claim: an enqueue during an empty claim ends the pause at once.
    const claimLoop: Effect.Effect<void> = Effect.gen(function*() {
      while (true) {
        if (halted) return
        const woken = yield* Effect.forkChild(options.wake, { startImmediately: true })
        claiming = true
        // One turn of the scheduler first: workers finishing their units in this turn join the claim.
        yield* Effect.yieldNow
        const jobs = yield* Effect.suspend(() => store.claim(Math.min(options.batch, Math.max(1, waiting)))).pipe(
          Effect.ensuring(Effect.sync(() => claiming = false))
        )
        if (jobs.length > 0) {
          yield* Fiber.interrupt(woken)
          hand.push(...jobs)
          // The pool halted while the claim ran: nobody takes these; they go back at once.
          if (halted) yield* Effect.ignore(release)
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

    // The moment the pool halts: no claim starts again, a pause is cut, and what is in hand goes back.
    const run = Effect.runForkWith(yield* Effect.context<never>())
    const halt = () => {
      if (halted) return
      halted = true
      if (claimer !== undefined && !claiming) claimer.fiber.interruptUnsafe()
      releasing = run(release)
    }

    // Read by the workers once the pool has halted: a job source has nothing to hand out after it.
    const ready: Effect.Effect<Option.Option<Job>> = Effect.sync(() => {
      halt()
      return Option.none()
    })

    // The source closes after the pool has drained: a release under way ends first; what is still in hand goes back.
    yield* Scope.addFinalizer(scope, Effect.suspend(() => {
      halted = true
      const pending = releasing === undefined ? Effect.void : Effect.ignore(Fiber.join(releasing))
      return Effect.andThen(pending, Effect.ignore(release))
    }))

    return { take, ready, halt }
  })
