/**
 * A durable job queue on SQLite (`node:sqlite`, built into Node 24: no extra
 * dependency) and a worker pool that loses nothing.
 *
 * The guarantee, exactly:
 *
 * - A job is marked done in one SQLite transaction together with whatever the
 *   worker's `commit` writes, and only while the worker still holds the job's
 *   claim. So a job is **done at most once, and its `commit` writes happen
 *   exactly once** for every job that is done.
 * - `process` itself runs **at least once**: again after a crash (SIGKILL) or
 *   a lost lease. Keep its outside effects idempotent, or write them in
 *   `commit`: the done mark is the commit point.
 * - A SIGTERM at any moment leaves every job done or pending: jobs in progress
 *   finish (they are units of a `Worker` pool), claimed jobs that were not
 *   finished are released when the queue closes — after every pool using it.
 * - After a SIGKILL, a claimed job becomes claimable again once its lease has
 *   passed (leases are renewed while the process lives, so a long job keeps
 *   its claim). A failed job is kept as `failed` with its error.
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Cause, Clock, Config, Context, Data, Deferred, Duration, Effect, Exit, Layer, Option, Schedule } from "effect"
import type { DatabaseSync } from "node:sqlite"
import * as Closer from "./Closer.ts"
import { durationOr, type InvalidOption } from "./internal/core/options.ts"
import { read } from "./internal/core/configError.ts"
import * as preflight from "./internal/core/preflight.ts"
import * as store from "./internal/jobs/store.ts"
import { Duration as DurationConfig, type DurationInput } from "./Options.ts"
import type * as Quit from "./Quit.ts"
import * as Worker from "./Worker.ts"

/** A claimed job: its id, its payload, and how many times it has been claimed. @since 0.1.0 */
export type Job = store.Job

/** How many jobs are in each state. @since 0.1.0 */
export type Stats = store.Stats

/**
 * A SQLite operation failed (opening the file, a statement, a `commit`).
 *
 * @since 0.1.0
 */
export class JobQueueError extends Data.TaggedError("JobQueueError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `job queue: ${this.operation} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/**
 * The queue's operations. `layerWorker` is built on `claim` and `complete`; use
 * them directly only for a consumer of your own.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly path: string
  readonly enqueue: (payloads: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<number>, JobQueueError>
  readonly stats: Effect.Effect<Stats, JobQueueError>
  /** Claims the next job (an expired claim first, then the oldest pending), if any. */
  readonly claim: Effect.Effect<Option.Option<Job>, JobQueueError>
  /** Marks the job done with `commit` in one transaction; false if its claim was lost. */
  readonly complete: (job: Job, commit: (db: DatabaseSync) => void) => Effect.Effect<boolean, JobQueueError>
  /** Marks the job failed; false if its claim was lost. */
  readonly fail: (job: Job, error: string) => Effect.Effect<boolean, JobQueueError>
  /** Completes when a job is enqueued by this process. */
  readonly enqueued: Effect.Effect<void>
  readonly pollInterval: Duration.Duration
}

/**
 * The queue as a service, provided by {@link layer}.
 *
 * @since 0.1.0
 */
export class JobQueue extends Context.Service<JobQueue, Service>()("effect-graceful/JobQueue") {}

/**
 * Options of {@link layer}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** The SQLite file; made if missing. */
  readonly path: string
  /** How long a claim holds without renewal (renewed every third of it). Default 30 s. */
  readonly lease?: DurationInput | undefined
  /** The wait after an empty claim; enqueues from this process end it early. Default 1 s. */
  readonly pollInterval?: DurationInput | undefined
  /** Runs once when the file is opened: create the tables your `commit` writes to. */
  readonly setup?: ((db: DatabaseSync) => void) | undefined
}

const attempt = <A>(operation: string, body: () => A): Effect.Effect<A, JobQueueError> =>
  Effect.try({ try: body, catch: (cause) => new JobQueueError({ operation, cause }) })

/** Like `attempt`, with the time from Effect's `Clock` (so that `TestClock` drives leases in tests). */
const attemptNow = <A>(operation: string, body: (now: number) => A): Effect.Effect<A, JobQueueError> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => attempt(operation, () => body(now)))

/**
 * Opens the queue for the lifetime of the layer. Pools using it (through
 * {@link layerWorker}) must be built on top of it, so that they drain first. When it
 * closes, in this order: lease renewal stops; the claims this process still
 * holds (jobs cut at the drain deadline, or claimed but never started) are
 * released to pending; the database closes.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-graceful"
 * const Jobs = JobQueue.layer({
 *   path: "jobs.db",
 *   setup: (db) => db.exec("CREATE TABLE IF NOT EXISTS resized (job INTEGER NOT NULL)")
 * })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<JobQueue, JobQueueError | InvalidOption, Quit.Quit> =>
  Layer.effect(
    JobQueue,
    Effect.gen(function*() {
      const lease = yield* durationOr(options.lease, Duration.seconds(30), "JobQueue: lease")
      const pollInterval = yield* durationOr(options.pollInterval, Duration.seconds(1), "JobQueue: pollInterval")
      const leaseMillis = Duration.toMillis(lease)
      const db = yield* Closer.make(
        "jobs db",
        Effect.tryPromise({
          try: () => store.open(options.path),
          catch: (cause) => new JobQueueError({ operation: "open", cause })
        }).pipe(Effect.flatMap((opened) =>
          attempt("setup", () => options.setup?.(opened.db)).pipe(
            Effect.as(opened),
            Effect.tapError(() => Effect.sync(() => opened.db.close()))
          )
        )),
        (db) =>
          attempt("release", () => db.release()).pipe(
            Effect.tap((n) => n > 0 ? Effect.logInfo(`jobs db: released ${n} claimed jobs to pending`) : Effect.void),
            Effect.ensuring(Effect.sync(() => db.db.close()))
          )
      )
      // A worker of this layer, running until it closes: it renews through the drain of every pool using the queue.
      yield* Worker.loop("jobs lease", attemptNow("renew", (now) => db.renew(now, leaseMillis)), {
        spaced: Duration.divideUnsafe(lease, 3),
        until: "close"
      })
      let enqueued = yield* Deferred.make<void>()
      return JobQueue.of({
        path: options.path,
        pollInterval,
        enqueue: (payloads) =>
          attemptNow("enqueue", (now) => db.enqueue(payloads, now)).pipe(
            Effect.tap(() => {
              const previous = enqueued
              enqueued = Deferred.makeUnsafe<void>()
              return Deferred.done(previous, Exit.void)
            })
          ),
        stats: attempt("stats", () => db.stats()),
        claim: attemptNow("claim", (now) => Option.fromUndefinedOr(db.claim(now, leaseMillis))),
        complete: (job, commit) => attemptNow("complete", (now) => db.complete(job, now, commit)),
        fail: (job, error) => attemptNow("fail", (now) => db.fail(job, now, error)),
        enqueued: Effect.suspend(() => Deferred.await(enqueued))
      })
    })
  )

/**
 * {@link layer} configured from the environment: `JOBS_DB` (the file),
 * `JOBS_LEASE` (default 30s), `JOBS_POLL_INTERVAL` (default 1s).
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-graceful"
 * const Jobs = JobQueue.layerConfig({ setup: (db) => db.exec("CREATE TABLE IF NOT EXISTS sent (job INTEGER)") })
 * ```
 * @since 0.1.0
 */
export const layerConfig = (
  options: Pick<Options, "setup"> = {}
): Layer.Layer<JobQueue, JobQueueError | InvalidOption, Quit.Quit> =>
  Layer.unwrap(
    Effect.map(
      preflight.declare(read(Config.all({
        path: Config.String("JOBS_DB"),
        lease: DurationConfig("JOBS_LEASE").pipe(Config.withDefault(Duration.seconds(30))),
        pollInterval: DurationConfig("JOBS_POLL_INTERVAL").pipe(Config.withDefault(Duration.seconds(1)))
      }))),
      (config) => layer({ ...config, ...options })
    )
  )

/** Adds jobs (one transaction) and wakes this process's idle workers; returns their ids. @since 0.1.0 */
export const enqueue = (payloads: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<number>, JobQueueError, JobQueue> =>
  JobQueue.use((queue) => queue.enqueue(payloads))

/** How many jobs are pending, claimed, done and failed. @since 0.1.0 */
export const stats: Effect.Effect<Stats, JobQueueError, JobQueue> = JobQueue.use((queue) => queue.stats)

/**
 * Options of {@link layerWorker}: those of a `Worker` pool, and `commit`.
 *
 * @since 0.1.0
 */
export interface WorkerOptions<A, E> extends Omit<Worker.Options<Job, E | JobQueueError>, "onGiveUp"> {
  /**
   * Runs inside the transaction that marks the job done, with `process`'s
   * result: write the job's results here and they are written exactly once.
   * Throwing rolls the done mark back (the unit fails).
   */
  readonly commit?: ((db: DatabaseSync, job: Job, result: A) => void) | undefined
}

/**
 * The default policy of a job worker: retry three times (1 s, 2 s, 4 s), then
 * mark the job failed and go on.
 *
 * @since 0.1.0
 */
export const defaultPolicy: Worker.Policy<unknown> = Worker.retry(
  Schedule.exponential("1 second").pipe(Schedule.upTo({ times: 3 }))
)

/**
 * A pool that claims jobs, runs `process` on each as a unit, and marks it
 * done with `commit` in one transaction. A job the policy gives up on is
 * marked `failed`; with `Worker.failApp` it is released instead.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { JobQueue, Main } from "effect-graceful"
 * const Resize = JobQueue.layerWorker("resize", (job) => Effect.log(`resizing ${job.payload}`), {
 *   workers: 4,
 *   commit: (db, job) => db.prepare("INSERT INTO resized (job) VALUES (?)").run(job.id)
 * })
 * const Jobs = JobQueue.layer({ path: "jobs.db", setup: (db) => db.exec("CREATE TABLE IF NOT EXISTS resized (job INTEGER)") })
 * Main.runMain(Resize.pipe(Layer.provide(Jobs)))
 * ```
 * @since 0.1.0
 */
export const consume = <A, E, R>(
  name: string,
  process: (job: Job) => Effect.Effect<A, E, R>,
  options: WorkerOptions<A, E> = {}
): Effect.Effect<Worker.Worker, InvalidOption, JobQueue | Quit.Quit | Scope.Scope | R> =>
  Effect.gen(function*() {
    const queue = yield* JobQueue
    const { commit } = options
    const unit = (job: Job) =>
      Effect.flatMap(process(job), (result) => queue.complete(job, (db) => commit?.(db, job, result))).pipe(
        Effect.flatMap((done) =>
          done ? Effect.void : Effect.logWarning(`${name}: job ${job.id} lost its claim; another worker owns it now`)
        )
      )
    const giveUp = (job: Job, cause: Cause.Cause<E | JobQueueError>) =>
      queue.fail(job, describe(cause)).pipe(
        Effect.catch((error) => Effect.logError(`${name}: could not mark job ${job.id} failed`, error)),
        Effect.asVoid
      )
    return yield* Worker.consume(name, Worker.poll(queue.claim, { interval: queue.pollInterval, wake: queue.enqueued }), unit, {
      ...options,
      onFailure: options.onFailure ?? defaultPolicy,
      onGiveUp: giveUp
    })
  })

/**
 * {@link consume} as a layer; provide it with {@link layer}.
 *
 * @since 0.1.0
 */
export const layerWorker = <A, E, R>(
  name: string,
  process: (job: Job) => Effect.Effect<A, E, R>,
  options: WorkerOptions<A, E> = {}
): Layer.Layer<never, InvalidOption, JobQueue | Quit.Quit | R> => Layer.effectDiscard(consume(name, process, options))

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}
