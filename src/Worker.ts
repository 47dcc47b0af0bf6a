/**
 * Workers as fibers owned by a scope: a loop that runs a unit of work until
 * the quit event fires (Go's `for !quit.HasFired()`), or a consumer that takes
 * items from a source — an Effect `Queue`, a `Stream`, a poll function — and
 * runs each as a unit (Go's `select` on `Done()`). `workers: n` makes a pool.
 *
 * What a worker promises:
 *
 * - A unit that has started runs to completion while draining. Waiting
 *   between units — a take, a poll interval, a pause, a retry backoff — is cut
 *   the moment the quit event fires (or its scope begins to close, if that
 *   comes first).
 * - Counting is structural: the pool is a `Quit.group` (kind `worker`), and
 *   nobody counts by hand. Units in flight and worker fibers running are
 *   visible at any time (the {@link Worker} handle) and as metrics
 *   (`effect_graceful_in_flight{group}`, `effect_graceful_workers_running{worker}`,
 *   `effect_graceful_unit_failures_total{worker}`); the shutdown report shows
 *   the pool's units in flight when draining began and when it ended.
 * - A failing unit follows the worker's {@link Policy}; the default is
 *   {@link logAndContinue}.
 *
 * @since 0.1.0
 */
import type { Cause, Queue, Stream } from "effect"
import { Duration, Effect, Exit, Layer, Option, Queue as Q, Scope } from "effect"
import * as groups from "./internal/core/group.ts"
import { durationOr, InvalidOption } from "./internal/core/options.ts"
import { current } from "./internal/core/quit.ts"
import { Pool } from "./internal/worker/pool.ts"
import * as internal from "./internal/worker/runner.ts"
import * as streams from "./internal/worker/stream.ts"
import type { DurationInput } from "./Options.ts"
import type * as Quit from "./Quit.ts"

// ---- sources -------------------------------------------------------------------

/**
 * Where a worker takes its items from. Opened once per pool, in the pool's
 * scope, before the workers start, so it stays open until they have drained;
 * what it opens is each worker's wait for its next item, which fails with
 * `Cause.Done` when the source has ended.
 *
 * @category models
 * @since 0.1.0
 */
export interface Source<A, E = never, R = never> {
  readonly open: Effect.Effect<Effect.Effect<A, E | Cause.Done> | Intake<A, E>, InvalidOption, R | Scope.Scope>
}

/**
 * What a source opens when a bare take is not enough: the take, and
 *
 * - `halt`, which the pool calls once, synchronously, the moment it stops
 *   taking — at the quit event, or when its scope begins to close (see
 *   `until`): a source that fetches ahead (a broker's prefetch, a queue's
 *   claims) stops fetching and hands back at once what no worker took, in
 *   fibers of its own scope, which stays open until the pool has drained;
 * - `ready`, read only once the pool has halted: an item the source has
 *   without waiting, or none — then the worker stops. It never waits: a
 *   stream's items already emitted are processed, not dropped.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import type { Worker } from "effect-graceful"
 * const source: Worker.Source<string> = {
 *   open: Effect.map(Queue.unbounded<string>(), (queue): Worker.Intake<string> => ({
 *     take: Queue.take(queue),
 *     halt: () => console.log("stop fetching; hand back what was fetched")
 *   }))
 * }
 * ```
 * @category models
 * @since 0.1.0
 */
export type Intake<A, E = never> = internal.Intake<A, E>

/**
 * Takes items from an Effect `Queue`, one per take. A worker stops when the
 * queue ends (`Queue.end`).
 *
 * What a quit drops: nothing. A take that waits holds no item (it is cut at
 * the quit event and the next item stays in the queue); an item taken is a
 * unit, processed while draining. Items still in the queue when the pool
 * closes stay there — an in-memory queue is lost on exit: use `JobQueue` for
 * work that must survive.
 *
 * @example
 * ```ts
 * import { Effect, Queue } from "effect"
 * import { Worker } from "effect-graceful"
 * const emails = Effect.gen(function*() {
 *   const queue = yield* Queue.unbounded<string>()
 *   yield* Worker.consume("emails", Worker.fromQueue(queue), (to) => Effect.log(`sending to ${to}`), { workers: 4 })
 * })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const fromQueue = <A, E>(queue: Queue.Dequeue<A, E>): Source<A, E> => ({ open: Effect.succeed(Q.take(queue)) })

/**
 * Takes items from a `Stream`, pulled on demand: a pull starts only when a
 * worker needs an item and none is in hand, one pull at a time, and nothing
 * is pulled ahead. A worker stops when the stream ends; a failing stream
 * fails the app.
 *
 * What a quit drops, exactly:
 *
 * - nothing the stream has emitted: a chunk it emits is in hand, and every
 *   item of it is processed, while draining too;
 * - nothing the stream has ready: after the quit event the pool goes on
 *   taking what a pull returns without waiting — items a stream operator
 *   holds (`Stream.rechunk`, `Stream.buffer`), or those its source gives at
 *   once — and stops at the first pull that would wait. That pull is
 *   interrupted, and the stream is not pulled again: a pull waiting on an
 *   empty `Queue` holds nothing, and what is offered later stays in the queue;
 * - what a stream operator holds inside a pull that waits at that moment —
 *   the item of a `Stream.mapEffect` whose effect is under way — is dropped
 *   with the stream;
 * - items in hand not yet started when the drain deadline cuts the pool.
 *
 * So `Stream.fromQueue` (which takes every item queued at each pull) has its
 * queue emptied before the pool stops; `Worker.fromQueue` leaves them there.
 * A stream that always has an item ready (`Stream.range`) keeps its pool busy
 * until the drain deadline: use {@link loop} for such work.
 *
 * `buffer` is accepted for compatibility and has no effect: nothing is pulled
 * ahead, so nothing pulled ahead can be dropped.
 *
 * @example
 * ```ts
 * import { Effect, Queue, Stream } from "effect"
 * import { Worker } from "effect-graceful"
 * const lines = Effect.gen(function*() {
 *   const queue = yield* Queue.unbounded<string>()
 *   yield* Worker.consume("lines", Worker.fromStream(Stream.fromQueue(queue)), (line) => Effect.log(line))
 * })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const fromStream = <A, E, R>(
  stream: Stream.Stream<A, E, R>,
  _options: { readonly buffer?: number | undefined } = {}
): Source<A, E, R> => ({ open: streams.open(stream) })

/**
 * Calls `poll` until it returns an item, waiting `interval` after each empty
 * poll — or less, when `wake` completes (an in-process producer announcing new
 * items). The poll and the interval are both waits: closing cuts them at once.
 * A failing poll fails the app; wrap a flaky one in `Effect.retry`.
 *
 * What a quit drops: an item `poll` returns is a unit, processed while
 * draining; a poll cut at the quit event returns nothing, so what it holds at
 * that moment is the poll's own business. A poll that takes its item in one
 * uninterruptible step (a synchronous take, a statement) drops nothing; one
 * that waits after taking must give the item back when interrupted (as
 * `JobQueue`'s claims are released when the queue closes).
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Worker } from "effect-graceful"
 * // An item, or none yet: a row claimed from a table, a message from a broker.
 * const claimOne = Effect.sync(() => Math.random() < 0.5 ? Option.some("an item") : Option.none())
 * const source = Worker.poll(claimOne, { interval: "500 millis" })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const poll = <A, E, R>(
  poll: Effect.Effect<Option.Option<A>, E, R>,
  options: { readonly interval: DurationInput; readonly wake?: Effect.Effect<void> | undefined }
): Source<A, E, R> => ({
  open: Effect.flatMap(Effect.zip(Effect.context<R>(), durationOr(options.interval, Duration.zero, "poll: interval")), ([context, interval]) => {
    const sleep = Effect.sleep(interval)
    const pause = options.wake === undefined ? sleep : Effect.raceFirst(sleep, options.wake)
    const take: Effect.Effect<A, E> = Effect.flatMap(
      Effect.provideContext(poll, context),
      Option.match({ onSome: Effect.succeed, onNone: () => Effect.andThen(pause, take) })
    )
    return Effect.succeed(take)
  })
})

const forever: Source<void> = { open: Effect.succeed(Effect.void) }

// ---- failure policies ----------------------------------------------------------

/**
 * What a worker does when a unit fails (or dies):
 *
 * - {@link logAndContinue} (the default): log the cause, take the next item.
 * - {@link retry}: run the same item again on a `Schedule`; when the schedule
 *   is exhausted, log (or fail the app). The backoff is a wait: closing cuts it
 *   and the item is not retried.
 * - {@link failApp}: log the cause and fire the quit event as a failure (exit
 *   code 1); this worker stops, everything else drains.
 *
 * An interrupted unit (cut at the drain deadline) is not a failure: the worker
 * just stops.
 *
 * @category models
 * @since 0.1.0
 */
export type Policy<E> = internal.Policy<E>

/** Log the cause and continue with the next item — the default. @category constants @since 0.1.0 */
export const logAndContinue: { readonly _tag: "Log" } = { _tag: "Log" }

/** Log the cause and fire the quit event as a failure. @category constants @since 0.1.0 */
export const failApp: { readonly _tag: "Fail" } = { _tag: "Fail" }

/**
 * Retries the failed item on `schedule` (its input is the failure's `Cause`),
 * then, when the schedule is exhausted, logs and continues (`then: "log"`, the
 * default) or fails the app (`then: "fail"`).
 *
 * @example
 * ```ts
 * import { Schedule } from "effect"
 * import { Worker } from "effect-graceful"
 * const policy = Worker.retry(Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 3 })), { then: "fail" })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const retry = <E>(
  schedule: internal.RetrySchedule<E>,
  options: { readonly then?: "log" | "fail" | undefined } = {}
): Policy<E> => ({ _tag: "Retry", schedule, then: options.then ?? "log" })

// ---- workers -----------------------------------------------------------------

/**
 * Options of a worker or pool.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<A, E> {
  /** How many worker fibers (a pool). Default 1; 10,000 is an ordinary size. */
  readonly workers?: number | undefined
  /** What a failing unit does. Default {@link logAndContinue}. */
  readonly onFailure?: Policy<E> | undefined
  /** A pause after each unit (cut at once by closing). Default none. */
  readonly spaced?: DurationInput | undefined
  /**
   * When to stop taking items: `"quit"` (the default) the moment the quit
   * event fires — the drain delay is for servers, not for background work —
   * or when the scope closes, if that comes first; `"close"` only when the
   * scope closes, for work that units in flight rely on (renewing leases).
   */
  readonly until?: "quit" | "close" | undefined
  /** A drain timeout of its own: shorter than the shared one, never longer. */
  readonly drainTimeout?: DurationInput | undefined
  /** Bounds the cut's end: shorter than the shared close timeout, never longer. */
  readonly closeTimeout?: DurationInput | undefined
  /** Called when the policy gives up on an item and logs it (a durable source marks it failed). */
  readonly onGiveUp?: ((item: A, cause: Cause.Cause<E>) => Effect.Effect<void>) | undefined
}

/**
 * A running worker or pool: live counts, readable at any time.
 *
 * @category models
 * @since 0.1.0
 */
export interface Worker {
  readonly name: string
  /** Worker fibers still running. */
  readonly running: Effect.Effect<number>
  /** Units in progress. */
  readonly inFlight: Effect.Effect<number>
  /** Completes the moment no worker fiber is left (source ended, closed, or failed the app). */
  readonly awaitStopped: Effect.Effect<void>
}

/**
 * Starts a pool that takes items from `source` and runs `process` on each as a
 * unit, for the lifetime of the current scope. Shutdown, in this order:
 *
 * 1. the quit event fires (or the scope begins to close, if that comes first;
 *    see `until`): the workers stop taking — every wait (take, poll interval,
 *    pause, retry backoff) is cut at once; an item already taken is still
 *    processed;
 * 2. units in progress run to completion, through the drain delay and after;
 * 3. the scope closes: the pool is done the moment its last unit ends
 *    (event-driven), and at once if none is running;
 * 4. at the drain deadline, units still running are interrupted — their
 *    finalizers run — and the report says how many were cut;
 * 5. the source closes (a stream stops).
 *
 * @example
 * ```ts
 * import { Effect, Layer, Queue } from "effect"
 * import { Worker } from "effect-graceful"
 * const Emails = Layer.effectDiscard(Effect.gen(function*() {
 *   const queue = yield* Queue.unbounded<string>()
 *   yield* Worker.consume("emails", Worker.fromQueue(queue), (to) => Effect.log(`sent to ${to}`), { workers: 8 })
 * }))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const consume = <A, E1, R1, E, R>(
  name: string,
  source: Source<A, E1, R1>,
  process: (item: A) => Effect.Effect<unknown, E, R>,
  options: Options<A, E> = {}
): Effect.Effect<Worker, InvalidOption, Quit.Quit | Scope.Scope | R | R1> =>
  Effect.gen(function*() {
    const quit = yield* current
    const workers = options.workers ?? 1
    if (!Number.isSafeInteger(workers) || workers < 1) {
      return yield* new InvalidOption({ variable: `${name}: workers`, value: String(workers), reason: "expected a positive integer" })
    }
    const spaced = options.spaced === undefined ? undefined : yield* durationOr(options.spaced, Duration.zero, `${name}: spaced`)
    // Checked before the source opens: bad input acquires nothing.
    yield* groups.timeouts(quit, name, options)
    // The source lives in a scope of its own, which the group closes once it has drained (step 5).
    const sourceScope = yield* Scope.fork(yield* Effect.scope)
    const opened = yield* Scope.provide(source.open, sourceScope)
    const intake: Intake<A, E1> = Effect.isEffect(opened) ? { take: opened } : opened
    const pool = new Pool(name, yield* Effect.context<never>(), intake.halt ?? (() => {}))
    const { group, inFlight } = yield* groups.make(quit, name, {
      kind: "worker",
      drainTimeout: options.drainTimeout,
      closeTimeout: options.closeTimeout,
      onFire: (options.until ?? "quit") === "quit" ? () => pool.halt() : undefined,
      onStop: pool.stop,
      afterDrain: () => Scope.close(sourceScope, Exit.void)
    })
    pool.count(inFlight)
    yield* internal.start(pool, workers, {
      take: intake.take,
      ready: intake.ready,
      process,
      policy: options.onFailure ?? logAndContinue,
      spaced,
      until: options.until ?? "quit",
      onGiveUp: options.onGiveUp
    })
    return {
      name: group.name,
      running: Effect.sync(() => pool.running),
      inFlight: group.inFlight,
      awaitStopped: pool.awaitStopped
    }
  })

/**
 * Runs `unit` again and again until the quit event fires or the current scope
 * closes: the unit in progress completes, then the loop stops. `spaced` pauses between units (the
 * pause is cut at once by closing); `workers` runs several loops.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Worker } from "effect-graceful"
 * const ticker = Worker.loop("ticker", Effect.log("tick"), { spaced: "1 second" })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const loop = <E, R>(
  name: string,
  unit: Effect.Effect<unknown, E, R>,
  options: Options<void, E> = {}
): Effect.Effect<Worker, InvalidOption, Quit.Quit | Scope.Scope | R> => consume(name, forever, () => unit, options)

/**
 * {@link consume} as a layer: the pool lives as long as the layer, and closes
 * before the layers it depends on (a database it writes to).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <A, E1, R1, E, R>(
  name: string,
  source: Source<A, E1, R1>,
  process: (item: A) => Effect.Effect<unknown, E, R>,
  options: Options<A, E> = {}
): Layer.Layer<never, InvalidOption, Quit.Quit | R | R1> => Layer.effectDiscard(consume(name, source, process, options))

/**
 * {@link loop} as a layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Main, Worker } from "effect-graceful"
 * Main.runMain(Worker.layerLoop("ticker", Effect.log("tick"), { spaced: "1 second" }))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerLoop = <E, R>(
  name: string,
  unit: Effect.Effect<unknown, E, R>,
  options: Options<void, E> = {}
): Layer.Layer<never, InvalidOption, Quit.Quit | R> => Layer.effectDiscard(loop(name, unit, options))
