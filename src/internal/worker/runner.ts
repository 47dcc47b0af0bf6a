/**
 * The loop each worker of a pool runs: take (a wait), run the item as a unit,
 * follow the failure policy, pause (a wait), again — until the pool halts or
 * the source ends.
 *
 * @internal
 */
import type { Duration } from "effect"
import { Cause, Effect, Exit, Metric, Pull, Schedule } from "effect"
import { current, type Quit, type QuitImpl } from "../core/quit.ts"
import * as sequence from "../core/sequence.ts"
import type { Pool, Slot } from "./pool.ts"

/** A retry schedule: its input is the failure's cause. @internal */
export type RetrySchedule<E> = Schedule.Schedule<unknown, Cause.Cause<E>>

/** @internal */
export type Policy<E> =
  | { readonly _tag: "Log" }
  | { readonly _tag: "Fail" }
  | {
    readonly _tag: "Retry"
    readonly schedule: RetrySchedule<E>
    readonly then: "log" | "fail"
  }

/** What one pool runs. @internal */
export interface Run<A, E, R> {
  readonly take: Effect.Effect<A, unknown>
  readonly process: (item: A) => Effect.Effect<unknown, E, R>
  readonly policy: Policy<E>
  readonly spaced: Duration.Duration | undefined
  /** `quit`: stop taking at the quit event; `close`: only when the scope closes. */
  readonly until: "quit" | "close"
  readonly onGiveUp: ((item: A, cause: Cause.Cause<E>) => Effect.Effect<void>) | undefined
}

/**
 * Starts `workers` worker fibers, detached from the scope: closing the scope
 * must not interrupt a unit — the group drains it, and cuts it only at the
 * drain deadline.
 *
 * @internal
 */
export const start = <A, E, R>(pool: Pool, workers: number, run: Run<A, E, R>): Effect.Effect<void, never, R | Quit> =>
  Effect.gen(function*() {
    const runner = new Runner(pool, yield* current, run)
    for (let i = 0; i < workers; i++) yield* Effect.forkDetach(runner.body, { startImmediately: true })
  })

class Runner<A, E, R> {
  readonly #pool: Pool
  readonly #quit: QuitImpl
  readonly #run: Run<A, E, R>

  constructor(pool: Pool, quit: QuitImpl, run: Run<A, E, R>) {
    this.#pool = pool
    this.#quit = quit
    this.#run = run
  }

  /** A worker fiber: uninterruptible but for its waits and its units. */
  get body(): Effect.Effect<void, never, R> {
    const pool = this.#pool
    return Effect.withFiber((fiber) => {
      const slot = pool.join(fiber)
      return Effect.ensuring(this.#loop(slot), Effect.sync(() => pool.leave(slot)))
    }).pipe(Effect.uninterruptible, Effect.annotateLogs({ worker: pool.name }))
  }

  // Built once per worker. The hot path — take, unit, next — is a handful of
  // primitives per item and allocates no closure: the take and the unit are
  // the two interruptible regions, each matched on its cause.
  #loop(slot: Slot): Effect.Effect<void, never, R> {
    const pool = this.#pool
    const run = this.#run
    const pause = run.spaced === undefined ? undefined : pool.wait(slot, Effect.sleep(run.spaced))
    const next = (go: boolean): Effect.Effect<void, never, R> => {
      if (!go) return Effect.void
      if (pause === undefined) return loop
      return Effect.flatMap(pause, (paused) => Exit.isSuccess(paused) ? loop : Effect.void)
    }
    const unitDone = () => {
      pool.leaveUnit(slot)
      return next(true)
    }
    const onItem = (item: A): Effect.Effect<void, never, R> => {
      slot.waiting = false
      pool.enterUnit(slot)
      return Effect.matchCauseEffect(Effect.interruptible(this.#process(item)), {
        onSuccess: unitDone,
        onFailure: (cause) => {
          pool.leaveUnit(slot)
          return Effect.flatMap(this.#recover(slot, item, cause), next)
        }
      })
    }
    const onTakeFailure = (cause: Cause.Cause<unknown>) => {
      slot.waiting = false
      return this.#sourceEnded(cause)
    }
    const take = Effect.matchCauseEffect(Effect.interruptible(run.take), { onFailure: onTakeFailure, onSuccess: onItem })
    const loop: Effect.Effect<void, never, R> = Effect.suspend(() => {
      if (this.#halted()) return Effect.void
      slot.waiting = true
      return take
    })
    return loop
  }

  // A `process` that throws instead of returning an Effect fails the unit like a defect.
  #process(item: A): Effect.Effect<unknown, E, R> {
    try {
      return this.#run.process(item)
    } catch (error) {
      return Effect.die(error)
    }
  }

  // The quit event is read here too: the pool's watcher may not have run yet.
  #halted(): boolean {
    return this.#pool.halted || (this.#run.until === "quit" && this.#quit.hasFired())
  }

  // A retried unit, as the first: interruptible in the worker's own fiber.
  #unit(slot: Slot, item: A): Effect.Effect<Exit.Exit<unknown, E>, never, R> {
    const pool = this.#pool
    return Effect.suspend(() => {
      pool.enterUnit(slot)
      return Effect.map(Effect.exit(Effect.interruptible(this.#process(item))), (exit) => {
        pool.leaveUnit(slot)
        return exit
      })
    })
  }

  #recover(slot: Slot, item: A, first: Cause.Cause<E>): Effect.Effect<boolean, never, R> {
    const self = this
    const name = this.#pool.name
    return Effect.gen(function*() {
      let cause = first
      let step: ((cause: Cause.Cause<E>) => Pull.Pull<unknown, never, unknown>) | undefined
      while (true) {
        // Interrupted: cut at the drain deadline; the worker is closing.
        if (Cause.hasInterruptsOnly(cause)) return false
        yield* Metric.update(self.#pool.failures, 1)
        const policy = self.#run.policy
        if (policy._tag !== "Retry") return yield* self.#giveUp(policy._tag === "Fail" ? "fail" : "log", item, cause)
        step ??= yield* Schedule.toStepWithSleep(policy.schedule)
        yield* Effect.logWarning(`${name}: a unit failed; retrying`, cause)
        // The backoff is a wait between units: closing cuts it at once.
        const waited = yield* self.#pool.wait(slot, step(cause))
        if (Exit.isFailure(waited)) {
          if (!Pull.isDoneCause(waited.cause)) {
            yield* Effect.logWarning(`${name}: closing; a failed unit will not be retried`)
            return false
          }
          return yield* self.#giveUp(policy.then, item, cause)
        }
        const exit = yield* self.#unit(slot, item)
        if (Exit.isSuccess(exit)) return true
        cause = exit.cause
      }
    })
  }

  #giveUp(then: "log" | "fail", item: A, cause: Cause.Cause<E>): Effect.Effect<boolean> {
    const name = this.#pool.name
    if (then === "fail") return this.#failApp(`${name}: a unit failed`, cause)
    const onGiveUp = this.#run.onGiveUp
    return Effect.logError(`${name}: a unit failed`, cause).pipe(
      Effect.andThen(onGiveUp === undefined ? Effect.void : onGiveUp(item, cause)),
      Effect.as(true)
    )
  }

  #sourceEnded(cause: Cause.Cause<unknown>): Effect.Effect<void> {
    if (Pull.isDoneCause(cause) || Cause.hasInterruptsOnly(cause)) return Effect.void
    return Effect.asVoid(this.#failApp(`${this.#pool.name}: its source failed`, cause))
  }

  #failApp(reason: string, cause: Cause.Cause<unknown>): Effect.Effect<boolean> {
    return Effect.logError(`${reason}; failing the app`, cause).pipe(
      Effect.andThen(Effect.sync(() => sequence.fail(this.#quit, { _tag: "Failure", reason, error: Cause.squash(cause) }))),
      Effect.as(false)
    )
  }
}
