/**
 * The machinery behind `Worker`: a pool of worker fibers that wait for items
 * (interruptibly), run each item as a counted unit in a fiber of its own, and
 * follow a failure policy.
 *
 * Why a fiber per unit: a worker fiber is interruptible only while it waits.
 * Closing interrupts every worker fiber; one that is waiting stops at once,
 * one that has an item in hand (even if it received it a moment before) is
 * uninterruptible, so the interruption is deferred and it still hands the
 * item to a unit. The unit runs in its own fiber, started by the group, so
 * only the drain deadline can cut it.
 *
 * @internal
 */
import type { Duration, Scope } from "effect"
import { Cause, Context, Effect, Exit, Fiber, Latch, Metric, Pull, Schedule } from "effect"
import type { Group } from "../core/group.ts"
import { current, type Quit, type QuitImpl } from "../core/quit.ts"

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

const runningGauge = Metric.gauge("effect_graceful_workers_running", {
  description: "Worker fibers running, per worker name"
})
const failuresCounter = Metric.counter("effect_graceful_unit_failures_total", {
  description: "Units that failed (each attempt), per worker name",
  incremental: true
})

/**
 * Who is running, and who could still pick up an item: the counts the drain
 * waits on. Every count wakes its waiters through a latch; nothing polls.
 *
 * @internal
 */
export class Pool {
  readonly name: string
  readonly #live = new Set<Fiber.Fiber<unknown, unknown>>()
  // Live workers not inside a unit: waiting, or holding an item they have not
  // yet handed to a unit. Closing is settled when this reaches zero.
  #outside = 0
  readonly #settled = Latch.makeUnsafe(true)
  readonly #stopped = Latch.makeUnsafe(true)
  #halted = false
  readonly #context: Context.Context<never>
  readonly #gauge: Metric.Metric<number, Metric.GaugeState<number>>
  readonly failures: Metric.Metric<number, Metric.CounterState<number>>

  constructor(name: string, context: Context.Context<never>) {
    this.name = name
    this.#context = context
    this.#gauge = Metric.withAttributes(runningGauge, { worker: name })
    this.failures = Metric.withAttributes(failuresCounter, { worker: name })
  }

  get running(): number {
    return this.#live.size
  }

  get awaitStopped(): Effect.Effect<void> {
    return this.#stopped.await
  }

  join(fiber: Fiber.Fiber<unknown, unknown>): void {
    this.#live.add(fiber)
    if (this.#live.size === 1) this.#stopped.closeUnsafe()
    this.#gauge.updateUnsafe(this.#live.size, this.#context)
    this.#moveOutside(1)
  }

  leave(fiber: Fiber.Fiber<unknown, unknown>): void {
    this.#live.delete(fiber)
    this.#gauge.updateUnsafe(this.#live.size, this.#context)
    this.#moveOutside(-1)
    if (this.#live.size === 0) this.#stopped.openUnsafe()
  }

  enterUnit(): void {
    this.#moveOutside(-1)
  }

  leaveUnit(): void {
    this.#moveOutside(1)
  }

  #moveOutside(delta: number): void {
    this.#outside += delta
    if (this.#outside === 0) this.#settled.openUnsafe()
    else if (delta > 0 && this.#outside === 1) this.#settled.closeUnsafe()
  }

  /** True once the pool stops taking items. */
  get halted(): boolean {
    return this.#halted
  }

  /**
   * Stops intake: interrupts every worker fiber — waiting ones stop at once,
   * busy ones when their unit ends. Idempotent.
   */
  halt(): void {
    if (this.#halted) return
    this.#halted = true
    for (const fiber of [...this.#live]) fiber.interruptUnsafe()
  }

  /**
   * The group's `onStop`: halts, and completes when no worker is left outside
   * a unit, so that the group's count of units is final.
   */
  readonly stop: Effect.Effect<void> = Effect.suspend(() => {
    this.halt()
    return this.#settled.await
  })
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
 * Halts the pool the moment the quit event fires. Forked before the pool's
 * group, so that it is interrupted only after the group has drained and still
 * hears a quit event that the group's own finalizer fires (the layers
 * released, no signal).
 *
 * @internal
 */
export const haltAtQuit = (pool: Pool): Effect.Effect<void, never, Quit | Scope.Scope> =>
  Effect.flatMap(current, (quit) =>
    Effect.asVoid(Effect.forkScoped(Effect.andThen(quit.fired, Effect.sync(() => pool.halt())), { startImmediately: true })))

/**
 * Starts `workers` worker fibers, detached from the scope: closing the scope
 * must not interrupt a unit — the group drains it, and cuts it only at the
 * drain deadline.
 *
 * @internal
 */
export const start = <A, E, R>(
  pool: Pool,
  group: Group,
  workers: number,
  run: Run<A, E, R>
): Effect.Effect<void, never, R | Quit | Scope.Scope> =>
  Effect.gen(function*() {
    const quit = yield* current
    const body = new Runner(pool, group, quit, run).body
    for (let i = 0; i < workers; i++) {
      yield* Effect.forkDetach(body, { startImmediately: true })
    }
  })

/**
 * The loop every worker of a pool runs, built once per pool: an idle worker
 * costs its fiber and its wait, nothing more.
 */
class Runner<A, E, R> {
  readonly #pool: Pool
  readonly #group: Group
  readonly #quit: QuitImpl
  readonly #run: Run<A, E, R>
  readonly #pause: Effect.Effect<Exit.Exit<void, unknown>> | undefined

  constructor(pool: Pool, group: Group, quit: QuitImpl, run: Run<A, E, R>) {
    this.#pool = pool
    this.#group = group
    this.#quit = quit
    this.#run = run
    this.#pause = run.spaced === undefined ? undefined : wait(Effect.sleep(run.spaced))
  }

  /** A worker fiber: uninterruptible but for its waits. */
  get body(): Effect.Effect<void, never, R> {
    const pool = this.#pool
    return Effect.withFiber((fiber) => {
      pool.join(fiber)
      return Effect.ensuring(this.#loop, Effect.sync(() => pool.leave(fiber)))
    }).pipe(Effect.uninterruptible, Effect.annotateLogs({ worker: pool.name }))
  }

  // The hot path (take, unit, next) is written with flatMap: it runs once per item.
  readonly #loop: Effect.Effect<void, never, R> = Effect.suspend(() =>
    this.#halted()
      ? Effect.void
      : Effect.flatMap(wait(this.#run.take), (taken) =>
        Exit.isFailure(taken)
          ? this.#sourceEnded(taken.cause)
          : Effect.flatMap(this.#handle(taken.value), (go) => this.#next(go)))
  )

  // The quit event is read here too: the pool's watcher may not have run yet.
  #halted(): boolean {
    return this.#pool.halted || (this.#run.until === "quit" && this.#quit.hasFired())
  }

  #next(go: boolean): Effect.Effect<void, never, R> {
    if (!go) return Effect.void
    if (this.#pause === undefined) return this.#loop
    return Effect.flatMap(this.#pause, (paused) => Exit.isSuccess(paused) ? this.#loop : Effect.void)
  }

  #unit(item: A): Effect.Effect<Exit.Exit<unknown, E>, never, R> {
    const pool = this.#pool
    return Effect.flatMap(this.#group.fork(this.#run.process(item)), (fiber) => {
      // The unit is counted (by `fork`) before the worker stops counting as
      // outside: the drain never sees a taken item that nobody counts.
      pool.enterUnit()
      return Effect.map(Fiber.await(fiber), (exit) => {
        pool.leaveUnit()
        return exit
      })
    })
  }

  /** Runs one item to its end under the policy; false means: stop this worker. */
  #handle(item: A): Effect.Effect<boolean, never, R> {
    return Effect.flatMap(this.#unit(item), (exit) => Exit.isSuccess(exit) ? Effect.succeed(true) : this.#recover(item, exit.cause))
  }

  #recover(item: A, first: Cause.Cause<E>): Effect.Effect<boolean, never, R> {
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
        const waited = yield* wait(step(cause))
        if (Exit.isFailure(waited)) {
          if (!Pull.isDoneCause(waited.cause)) {
            yield* Effect.logWarning(`${name}: closing; a failed unit will not be retried`)
            return false
          }
          return yield* self.#giveUp(policy.then, item, cause)
        }
        const exit = yield* self.#unit(item)
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
      Effect.andThen(Effect.sync(() => this.#quit.fail({ _tag: "Failure", reason, error: Cause.squash(cause) }))),
      Effect.as(false)
    )
  }
}

/** Every wait goes through here: it is the only place where closing can interrupt a worker. */
const wait = <X>(effect: Effect.Effect<X, unknown>): Effect.Effect<Exit.Exit<X, unknown>> =>
  Effect.exit(Effect.interruptible(effect))
