/**
 * Consume a BullMQ queue (Redis) with a `Worker` pool, keeping the brokers'
 * stop contract (docs/brokers.md):
 *
 * 1. At the quit event intake stops: BullMQ's worker fetches nothing more
 *    (`worker.close()` is started), and jobs it fetched that no unit began
 *    are moved back to the head of the wait list at once (`job.moveToWait`)
 *    — another consumer gets them within milliseconds, not after a stalled
 *    check (`stalledInterval`, 30 s by default, and a lock expiry).
 * 2. Units in flight finish, counted in the report, until the drain
 *    deadline; then each is cut (its fiber interrupted; a {@link promise}
 *    handler's `AbortSignal` aborts) and its job moved back to wait the same
 *    way.
 * 3. A job is completed (BullMQ's `moveToCompleted`) only after its unit
 *    succeeded. The connection (the BullMQ worker and its Redis connections)
 *    is a closer of its own, closed after the pool: it waits for BullMQ to
 *    write every completion first.
 * 4. Delivery is at least once. The duplicate window: a SIGKILL (or a lost
 *    Redis connection) after a unit succeeded and before BullMQ's
 *    completion script ran — the job stays active until its lock
 *    (`lockDuration`) expires and the stalled check moves it back to wait,
 *    and runs again. After a SIGTERM none runs twice. A failed unit follows
 *    the worker's policy: `Worker.retry` runs it again in place (its lock
 *    renewed); when the policy gives up, the job is failed the BullMQ way —
 *    retried by the job's own `attempts`/`backoff`, then kept in the failed
 *    set (BullMQ's dead letter). With `Worker.failApp` the job is moved back
 *    to wait instead.
 *
 * The lock must last at least the drain timeout: a shorter `lockDuration`
 * is refused at start with a `SettingRefused` error naming both.
 *
 * `bullmq` is an optional peer dependency: install it to use this entry
 * point (`effect-graceful/BullMQ`).
 *
 * @since 0.1.0
 */
import type { ConnectionOptions, Job, WorkerOptions } from "bullmq"
import type { Scope } from "effect"
import { Duration, Effect, Layer } from "effect"
import * as bull from "./internal/brokers/bullmq.ts"
import { BrokerError, HandlerError, SettingRefused } from "./internal/brokers/errors.ts"
import type { Delivery } from "./internal/brokers/intake.ts"
import * as shared from "./internal/brokers/source.ts"
import { durationOr, InvalidOption } from "./internal/core/options.ts"
import type { DurationInput } from "./Options.ts"
import type * as Quit from "./Quit.ts"
import * as Worker from "./Worker.ts"

export {
  /** A broker call failed: connecting, settling a job, closing. @category errors @since 0.1.0 */
  BrokerError,
  /** A `promise` handler rejected. @category errors @since 0.1.0 */
  HandlerError,
  /** A broker setting that cannot keep the contract (a lock shorter than the drain timeout). @category errors @since 0.1.0 */
  SettingRefused
}

/**
 * Options of {@link consume}: those of a `Worker` pool, the Redis connection,
 * and BullMQ's own settings.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<E> extends Omit<Worker.Options<unknown, E>, "onGiveUp"> {
  /** The Redis connection: options, or an ioredis instance (then yours to close). */
  readonly connection: ConnectionOptions
  /** Jobs fetched ahead of the workers (BullMQ's concurrency is `workers + prefetch`). Default 0. */
  readonly prefetch?: number | undefined
  /** BullMQ's `lockDuration`; at least the drain timeout. Default 30 s (BullMQ's). */
  readonly lockDuration?: DurationInput | undefined
  /** Any other BullMQ worker setting (`stalledInterval`, `maxStalledCount`, `prefix`…). */
  readonly bullmq?: Omit<WorkerOptions, "connection" | "concurrency" | "lockDuration" | "autorun"> | undefined
}

/**
 * A handler written with Promises, for plain code: `signal` aborts when the
 * unit is cut; a rejection fails the unit with a {@link HandlerError}.
 *
 * @example
 * ```ts
 * import type { Job } from "bullmq"
 * import * as BullMQ from "effect-graceful/BullMQ"
 * const handler = BullMQ.promise(async (job: Job<{ id: number }>, signal: AbortSignal) => {
 *   await fetch(`https://example.com/${job.data.id}`, { signal })
 * })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const promise: <D>(
  handler: (job: Job<D>, signal: AbortSignal) => PromiseLike<unknown>
) => (job: Job<D>) => Effect.Effect<unknown, HandlerError> = shared.promise

/**
 * Starts a pool consuming `queue` for the lifetime of the current scope: the
 * connection (a closer named `<name> connection`) opens first and closes
 * after the pool. Fails with `SettingRefused` for a lock shorter than the
 * drain timeout, `InvalidOption` for bad options, `BrokerError` when Redis
 * cannot be reached.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as BullMQ from "effect-graceful/BullMQ"
 * const emails = BullMQ.consume("emails", (job) => Effect.log(`sending ${job.id}`), {
 *   connection: { host: "127.0.0.1", port: 6379 },
 *   workers: 8
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const consume = <D, E, R>(
  queue: string,
  handler: (job: Job<D>) => Effect.Effect<unknown, E, R>,
  options: Options<E>
): Effect.Effect<Worker.Worker, BrokerError | SettingRefused | InvalidOption, Quit.Quit | Scope.Scope | R> =>
  Effect.gen(function*() {
    const name = `bullmq ${queue}`
    const workers = options.workers ?? 1
    const prefetch = options.prefetch ?? 0
    if (!Number.isSafeInteger(prefetch) || prefetch < 0) {
      return yield* new InvalidOption({ variable: `${name}: prefetch`, value: String(prefetch), reason: "expected an integer ≥ 0" })
    }
    const { closeTimeout, drainTimeout, quit } = yield* shared.timeouts(name, options)
    const lock = yield* durationOr(options.lockDuration, bull.DEFAULT_LOCK, `${name}: lockDuration`)
    yield* bull.checkLock(lock, drainTimeout)
    const consumer = yield* bull.make<D>(
      name,
      queue,
      { ...options.bullmq, connection: options.connection, concurrency: workers + prefetch, lockDuration: Duration.toMillis(lock) },
      yield* Effect.context<never>()
    )
    yield* shared.connectionCloser(quit, name, "BullMQ", consumer.close)
    const intake = consumer.intake
    const source = shared.source(intake, consumer.run, closeTimeout)
    return yield* Worker.consume(name, source, intake.unit((held) => handler(held.job)), {
      ...options,
      onGiveUp: (delivery: Delivery<bull.Held<D>>, cause) => intake.reject(delivery, cause)
    })
  })

/**
 * {@link consume} as a layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as BullMQ from "effect-graceful/BullMQ"
 * export const Emails = BullMQ.layer("emails", (job) => Effect.log(`sending ${job.id}`), { connection: { port: 6379 }, workers: 4 })
 * // run it with Main.runMain, beside the layers it needs
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = <D, E, R>(
  queue: string,
  handler: (job: Job<D>) => Effect.Effect<unknown, E, R>,
  options: Options<E>
): Layer.Layer<never, BrokerError | SettingRefused | InvalidOption, Quit.Quit | R> =>
  Layer.effectDiscard(consume(queue, handler, options))
