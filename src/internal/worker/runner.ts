/**
 * The loop each worker of a pool runs: take (a wait), run the item as a unit,
 * follow the failure policy, pause (a wait), again — until the pool halts or
 * the source ends. After the halt, a source that would otherwise drop items
 * it holds (a stream's) hands them out through `ready`, and the workers
 * process them before they stop.
 *
 * @internal
 */
import type { Duration } from "effect"
import { Cause, Effect, Exit, Metric, Option, Pull, Schedule } from "effect"
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

/**
 * An opened source: a worker's wait for its next item, and — for a source
 * that holds items it would drop when the pool stops (a stream) — what it has
 * ready once the pool has halted: never a wait.
 *
 * @internal
 */
export interface Intake<A, E> {
  readonly take: Effect.Effect<A, E | Cause.Done>
  readonly ready?: Effect.Effect<Option.Option<A>> | undefined
  /** Called once, synchronously, the moment the pool halts (stops taking). */
  readonly halt?: (() => void) | undefined
}

/** What one pool runs. @internal */
export interface Run<A, E, R> {
  readonly take: Effect.Effect<A, unknown>
  readonly ready: Effect.Effect<Option.Option<A>> | undefined
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
  // primitives per item and allocates no closure of its own: the take and the
  // unit are the two interruptible regions, each matched on its cause.
  //
  // Once the pool has halted, a worker whose unit ends takes the next ready
  // item (if the source has `ready`) before it leaves the unit: the count of
  // units never passes through zero while items are still being handed out,
  // so the drain cannot end under them.
  #loop(slot: Slot): Effect.Effect<void, never, R> {
    const pool = this.#pool
    const run = this.#run
    const pause = run.spaced === undefined ? undefined : pool.wait(slot, Effect.sleep(run.spaced))
    const next = (go: boolean): Effect.Effect<void, never, R> => {
      if (!go) return Effect.void
      if (pause === undefined) return loop
      return Effect.flatMap(pause, (paused) => Exit.isSuccess(paused) ? loop : Effect.void)
    }
    const ready = run.ready
    // Halted, outside a unit: the next ready item starts one; none, the worker stops.
    const drainReady: Effect.Effect<void, never, R> = ready === undefined
      ? Effect.void
      : Effect.flatMap(ready, (item) => Option.isSome(item) ? onItem(item.value) : Effect.void)
    // Halted, inside a unit that has ended: the next ready item is the next unit, or the worker leaves.
    const chainReady: Effect.Effect<void, never, R> = ready === undefined
      ? Effect.sync(() => pool.leaveUnit(slot))
      : Effect.flatMap(ready, (item) => {
        if (Option.isNone(item)) {
          pool.leaveUnit(slot)
          return Effect.void
        }
        pool.chainUnit(slot)
        return runUnit(item.value)
      })
    const unitDone = () => {
      if (this.#halted()) return chainReady
      pool.leaveUnit(slot)
      return next(true)
    }
    // `#recover` starts inside the failed unit and says where it ended.
    const unitFailed = (item: A, cause: Cause.Cause<E>): Effect.Effect<void, never, R> =>
      Effect.flatMap(this.#recover(slot, item, cause), ({ go, inside }) => {
        if (inside) {
          if (go !== "stop" && this.#halted()) return chainReady
          pool.leaveUnit(slot)
          return go === "next" ? next(true) : Effect.void
        }
        return go === "next" ? next(true) : go === "closing" ? drainReady : Effect.void
      })
    // The unit, built once per worker: the item in hand is `current`, set as
    // the unit begins and read only by that unit.
    let current: A
    const unit: Effect.Effect<void, never, R> = Effect.matchCauseEffect(
      Effect.interruptible(Effect.suspend(() => this.#process(current))),
      { onSuccess: unitDone, onFailure: (cause) => unitFailed(current, cause) }
    )
    const runUnit = (item: A): Effect.Effect<void, never, R> => {
      current = item
      return unit
    }
    const onItem = (item: A): Effect.Effect<void, never, R> => {
      slot.waiting = false
      pool.enterUnit(slot)
      return runUnit(item)
    }
    const onTakeFailure = (cause: Cause.Cause<unknown>) => {
      slot.waiting = false
      // Its wait cut by the halt: what the source still has ready.
      if (Cause.hasInterruptsOnly(cause) && this.#halted()) return drainReady
      return this.#sourceEnded(cause)
    }
    const take = Effect.matchCauseEffect(Effect.interruptible(run.take), { onFailure: onTakeFailure, onSuccess: onItem })
    const loop: Effect.Effect<void, never, R> = Effect.suspend(() => {
      if (this.#halted()) return drainReady
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

  // A retried unit, as the first: interruptible in the worker's own fiber. It
  // enters the unit; the caller leaves it.
  #unit(slot: Slot, item: A): Effect.Effect<Exit.Exit<unknown, E>, never, R> {
    return Effect.suspend(() => {
      this.#pool.enterUnit(slot)
      return Effect.exit(Effect.interruptible(this.#process(item)))
    })
  }

  /**
   * Follows the policy for a failed unit, starting inside it: `next` (take
   * the next item), `closing` (the pool halted during a retry's backoff: no
   * retry; what the source has ready is still taken) or `stop` (cut, or the
   * app failed); `inside` says whether the worker is still in the unit. It
   * leaves the unit only for a retry's backoff, and never once the pool has
   * halted: a halted pool does not retry, and its count of units must not
   * pass through zero while a worker may still start one.
   */
  #recover(
    slot: Slot,
    item: A,
    first: Cause.Cause<E>
  ): Effect.Effect<{ readonly go: "next" | "closing" | "stop"; readonly inside: boolean }, never, R> {
    const self = this
    const pool = this.#pool
    const name = pool.name
    return Effect.gen(function*() {
      let cause = first
      let step: ((cause: Cause.Cause<E>) => Pull.Pull<unknown, never, unknown>) | undefined
      while (true) {
        // Interrupted: cut at the drain deadline; the worker is closing.
        if (Cause.hasInterruptsOnly(cause)) return { go: "stop", inside: true } as const
        yield* Metric.update(pool.failures, 1)
        const policy = self.#run.policy
        if (policy._tag === "Fail") {
          // The unit is over: it leaves the count before it fails the app, so
          // that a drain deadline at that very instant does not cut it.
          pool.leaveUnit(slot)
          return { go: yield* self.#giveUp("fail", item, cause), inside: false } as const
        }
        if (policy._tag !== "Retry") return { go: yield* self.#giveUp("log", item, cause), inside: true } as const
        if (self.#halted()) {
          yield* Effect.logWarning(`${name}: closing; a failed unit will not be retried`, cause)
          return { go: "closing", inside: true } as const
        }
        step ??= yield* Schedule.toStepWithSleep(policy.schedule)
        yield* Effect.logWarning(`${name}: a unit failed; retrying`, cause)
        // The backoff is a wait between units: closing cuts it at once.
        pool.leaveUnit(slot)
        const waited = yield* pool.wait(slot, step(cause))
        if (Exit.isFailure(waited)) {
          if (!Pull.isDoneCause(waited.cause)) {
            yield* Effect.logWarning(`${name}: closing; a failed unit will not be retried`)
            return { go: "closing", inside: false } as const
          }
          // The schedule is exhausted: the give-up runs outside the unit, as the backoff did.
          return { go: yield* self.#giveUp(policy.then, item, cause), inside: false } as const
        }
        const exit = yield* self.#unit(slot, item)
        if (Exit.isSuccess(exit)) return { go: "next", inside: true } as const
        cause = exit.cause
      }
    })
  }

  #giveUp(then: "log" | "fail", item: A, cause: Cause.Cause<E>): Effect.Effect<"next" | "stop"> {
    const name = this.#pool.name
    if (then === "fail") return Effect.as(this.#failApp(`${name}: a unit failed`, cause), "stop")
    const onGiveUp = this.#run.onGiveUp
    return Effect.logError(`${name}: a unit failed`, cause).pipe(
      Effect.andThen(onGiveUp === undefined ? Effect.void : onGiveUp(item, cause)),
      Effect.as("next")
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
