/**
 * A durable job queue on effect/sql's `SqlClient`, and a worker pool that
 * loses nothing. One queue, two databases:
 *
 * - **SQLite** (the default: a file path; `@effect/sql-sqlite-node`, on
 *   Node's built-in `node:sqlite`) — no server, any number of processes on
 *   one machine;
 * - **PostgreSQL** (a `postgres://` URL; `@effect/sql-pg`) — any number of
 *   processes on any number of machines: claims with `FOR UPDATE SKIP
 *   LOCKED`, idle workers woken on every machine by `LISTEN`/`NOTIFY`.
 *
 * The guarantee, exactly, on both:
 *
 * - A job is marked done in one transaction together with whatever the
 *   worker's `commit` writes, and only while the worker still holds the job's
 *   claim (claims are fenced by a token: a completion, failure or renewal
 *   with a stale one is refused). So a job is **done at most once, and its
 *   `commit` writes happen exactly once** for every job that is done.
 * - `process` itself runs **at least once**: again after a crash (SIGKILL) or
 *   a lost lease. Keep its outside effects idempotent, or write them in
 *   `commit`: the done mark is the commit point.
 * - A claim is handed out only once its statement has committed.
 * - A SIGTERM at any moment leaves every job done or pending: jobs in progress
 *   finish (they are units of a `Worker` pool); jobs claimed and not started
 *   are released the moment the quit event fires; jobs cut at the drain
 *   deadline are released when the queue closes — after every pool using it.
 * - After a SIGKILL, a claimed job becomes claimable again once its lease has
 *   passed (leases are renewed while the process lives, so a long job keeps
 *   its claim). A failed job is kept as `failed` with its error.
 * - A lock held by another process, a full disk or a lost connection is
 *   retried (short waits growing to 1 s) and logged with the error that
 *   happened; it never fails the app, and nothing waits inside SQLite longer
 *   than its busy timeout, so signals, probes and deadlines keep working.
 *
 * See docs/jobs.md: choosing SQLite or PostgreSQL, and moving between them.
 *
 * @since 0.1.0
 */
import { Cause, Config, Context, Deferred, Duration, Effect, Exit, Layer, Option, Schedule, Scope } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Closer from "./Closer.ts"
import { read } from "./internal/core/configError.ts"
import { durationOr, InvalidOption } from "./internal/core/options.ts"
import * as preflight from "./internal/core/preflight.ts"
import { connect, dialectOf, redact } from "./internal/jobs/connect.ts"
import * as consumer from "./internal/jobs/consumer.ts"
import * as errors from "./internal/jobs/errors.ts"
import * as statements from "./internal/jobs/sql.ts"
import * as store from "./internal/jobs/store.ts"
import { Duration as DurationConfig, type DurationInput } from "./Options.ts"
import type * as Quit from "./Quit.ts"
import * as QuitModule from "./Quit.ts"
import * as Worker from "./Worker.ts"

/** A claimed job: its id, its payload, its attempts, and its claim's token. @category models @since 0.1.0 */
export type Job = store.Job

/** How many jobs are in each state. @category models @since 0.1.0 */
export type Stats = store.Stats

/**
 * A store operation failed (opening the database, a statement, a transaction)
 * with an error that did not pass; its message says what happened ("the disk
 * is full", "the database is locked by another connection").
 *
 * @category errors
 * @since 0.1.0
 */
export const JobQueueError: typeof errors.JobQueueError = errors.JobQueueError
/** @category models @since 0.1.0 */
export type JobQueueError = errors.JobQueueError

/**
 * The queue's operations. `layerWorker` is built on them; use them directly
 * only for a consumer of your own.
 *
 * @category models
 * @since 0.1.0
 */
export interface Service {
  /** The SQLite file, or the PostgreSQL URL without its password. */
  readonly path: string
  readonly dialect: "sqlite" | "pg"
  /** The client the queue runs on: `commit` and `setup` write through it, in the queue's transaction. */
  readonly sql: SqlClient
  /** Adds jobs in one transaction and wakes idle workers (on every machine, on PostgreSQL); returns their ids. */
  readonly enqueue: (payloads: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<number>, JobQueueError>
  readonly stats: Effect.Effect<Stats, JobQueueError>
  /** Claims the next job (an expired claim first, then the oldest pending), if any. */
  readonly claim: Effect.Effect<Option.Option<Job>, JobQueueError>
  /** Claims up to `n` jobs in one statement. */
  readonly claimBatch: (n: number) => Effect.Effect<ReadonlyArray<Job>, JobQueueError>
  /** Marks the job done, with `commit`'s writes, in one transaction; false if its claim was lost. */
  readonly complete: <E = never>(
    job: Job,
    commit?: ((sql: SqlClient) => Effect.Effect<unknown, E>) | undefined
  ) => Effect.Effect<boolean, JobQueueError | Exclude<E, SqlError>>
  /** Marks the job failed; false if its claim was lost. */
  readonly fail: (job: Job, error: string) => Effect.Effect<boolean, JobQueueError>
  /** Extends the job's lease; false if its claim was lost. (Claims held by this process are renewed anyway.) */
  readonly renew: (job: Job) => Effect.Effect<boolean, JobQueueError>
  /** Gives back claims never started: pending again, the attempt not counted. */
  readonly release: (jobs: ReadonlyArray<Job>) => Effect.Effect<number, JobQueueError>
  /** Completes when a job is enqueued (by this process; on PostgreSQL, by any). */
  readonly enqueued: Effect.Effect<void>
  readonly pollInterval: Duration.Duration
}

/**
 * The queue as a service, provided by {@link layer}.
 *
 * @category services
 * @since 0.1.0
 */
export class JobQueue extends Context.Service<JobQueue, Service>()("effect-graceful/JobQueue") {}

/**
 * Options of {@link layer}.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** A SQLite file (made if missing), or a `postgres://` (`postgresql://`) URL. */
  readonly path: string
  /** How long a claim holds without renewal (renewed every third of it): a SIGKILLed process's jobs wait this long. Default 30 s. */
  readonly lease?: DurationInput | undefined
  /** The wait after an empty claim; enqueues (and, on PostgreSQL, notifications) end it early. Default 1 s. */
  readonly pollInterval?: DurationInput | undefined
  /** Runs once at open, in the queue's setup transaction: create the tables your `commit` writes to. */
  readonly setup?: ((sql: SqlClient) => Effect.Effect<unknown, SqlError>) | undefined
  /** The jobs table. Default `jobs`. */
  readonly table?: string | undefined
  /** SQLite: how long one statement may wait inside SQLite for a lock (blocking the event loop), before a retry. Default 20 ms. */
  readonly busyTimeout?: DurationInput | undefined
  /** PostgreSQL: the size of the connection pool (one more connection listens). Default 10. */
  readonly maxConnections?: number | undefined
}

const positive = (name: string, value: number | undefined, fallback: number) =>
  value === undefined ? Effect.succeed(fallback) : Number.isSafeInteger(value) && value > 0
    ? Effect.succeed(value)
    : Effect.fail(new InvalidOption({ variable: `JobQueue: ${name}`, value: String(value), reason: "expected a positive integer" }))

/**
 * Opens the queue for the lifetime of the layer. Pools using it (through
 * {@link layerWorker}) must be built on top of it, so that they drain first. When it
 * closes, in this order: it stops listening; lease renewal stops; the claims
 * this process still holds (jobs cut at the drain deadline) are released to
 * pending; the database closes.
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-graceful"
 * const Jobs = JobQueue.layer({
 *   path: "jobs.db", // or "postgres://app@db.internal/app"
 *   setup: (sql) => sql`CREATE TABLE IF NOT EXISTS resized (job BIGINT NOT NULL)`
 * })
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<JobQueue, JobQueueError | InvalidOption, Quit.Quit> =>
  Layer.effect(
    JobQueue,
    Effect.gen(function*() {
      const lease = yield* durationOr(options.lease, Duration.seconds(30), "JobQueue: lease")
      const pollInterval = yield* durationOr(options.pollInterval, Duration.seconds(1), "JobQueue: pollInterval")
      const busyTimeout = yield* durationOr(options.busyTimeout, Duration.millis(20), "JobQueue: busyTimeout")
      const maxConnections = yield* positive("maxConnections", options.maxConnections, 10)
      const table = options.table ?? "jobs"
      if (!statements.validTable(table)) {
        return yield* new InvalidOption({ variable: "JobQueue: table", value: table, reason: "expected a plain SQL identifier" })
      }
      if (Duration.toMillis(lease) <= 0) {
        return yield* new InvalidOption({ variable: "JobQueue: lease", value: Duration.format(lease), reason: "expected more than 0" })
      }
      const dialect = dialectOf(options.path)
      const sqls = dialect === "pg" ? statements.pg(table) : statements.sqlite(table)
      const path = redact(options.path)
      // The client's own scope: closed by the closer, after the release.
      const clientScope = yield* Scope.make()
      // The writer of grouped completions runs with this layer's services (its logger).
      const fork = Effect.runForkWith(yield* Effect.context<never>())
      const { connection, jobs } = yield* Closer.make(
        "jobs db",
        Effect.gen(function*() {
          const connection = yield* connect(options.path, { busyTimeout, maxConnections })
          yield* store.setup(connection.sql, sqls, options.setup)
          return { connection, jobs: store.make(connection.sql, sqls, Duration.toMillis(lease), fork) }
        }).pipe(
          Scope.provide(clientScope),
          Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(clientScope, exit) : Effect.void)
        ),
        ({ jobs }) => Effect.ensuring(releaseOwned(jobs, Duration.format(lease)), Scope.close(clientScope, Exit.void))
      )
      // A worker of this layer, running until it closes: it renews through the drain of every pool using the queue.
      yield* Worker.loop("jobs lease", jobs.renewOwned, { spaced: Duration.divideUnsafe(lease, 3), until: "close" })
      let enqueued = yield* Deferred.make<void>()
      const wake = () => {
        const previous = enqueued
        enqueued = Deferred.makeUnsafe<void>()
        Deferred.doneUnsafe(previous, Exit.void)
      }
      yield* connection.listen(sqls.channel, wake)
      return JobQueue.of({
        path,
        dialect,
        sql: jobs.sql,
        pollInterval,
        enqueue: (payloads) => Effect.tap(jobs.enqueue(payloads), () => Effect.sync(wake)),
        stats: jobs.stats,
        claim: Effect.map(jobs.claim(1), store.firstOption),
        claimBatch: (n) => jobs.claim(n),
        complete: (job, commit) => jobs.complete(job, commit),
        fail: jobs.fail,
        renew: jobs.renew,
        release: jobs.releaseUnstarted,
        enqueued: Effect.suspend(() => Deferred.await(enqueued))
      })
    })
  )

/**
 * Gives back the claims this process still holds, retrying until shortly
 * before the close deadline; then it gives up (their lease gives them back),
 * so that a lock held by another process does not leave the database's
 * closer abandoned.
 */
const releaseOwned = (jobs: store.Store, lease: string) =>
  Effect.flatMap(QuitModule.timeLeft("close"), (left) => {
    const millis = Duration.toMillis(left)
    // Completions still being written (of units cut at the drain deadline) end first: those jobs are done, not released.
    return Effect.andThen(jobs.idle, jobs.releaseOwned).pipe(
      Effect.timeoutOption(Duration.millis(Math.max(0, millis - Math.min(250, millis / 4)))),
      Effect.flatMap(Option.match({
        onNone: () =>
          Effect.logWarning(`jobs db: could not release this process's claims before the close deadline; they are claimable again when their lease (${lease}) passes`),
        onSome: (n) => n > 0 ? Effect.logInfo(`jobs db: released ${n} claimed jobs to pending`) : Effect.void
      })),
      Effect.catch((error) =>
        Effect.logWarning(`jobs db: could not release this process's claims (${error.message}); they are claimable again when their lease (${lease}) passes`))
    )
  })

/**
 * {@link layer} configured from the environment: `JOBS_DB` (a file path, or a
 * `postgres://` URL), `JOBS_LEASE` (default 30s), `JOBS_POLL_INTERVAL`
 * (default 1s).
 *
 * @example
 * ```ts
 * import { JobQueue } from "effect-graceful"
 * const Jobs = JobQueue.layerConfig({ setup: (sql) => sql`CREATE TABLE IF NOT EXISTS sent (job BIGINT)` })
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  options: Omit<Options, "path" | "lease" | "pollInterval"> = {}
): Layer.Layer<JobQueue, JobQueueError | InvalidOption, Quit.Quit> =>
  Layer.unwrap(
    Effect.map(
      preflight.declare(read(Config.all({
        path: Config.String("JOBS_DB"),
        lease: DurationConfig("JOBS_LEASE").pipe(Config.withDefault(Duration.seconds(30))),
        pollInterval: DurationConfig("JOBS_POLL_INTERVAL").pipe(Config.withDefault(Duration.seconds(1)))
      }))),
      (config) => layer({ ...options, ...config })
    )
  )

/** Adds jobs (one transaction) and wakes idle workers; returns their ids. @category combinators @since 0.1.0 */
export const enqueue = (payloads: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<number>, JobQueueError, JobQueue> =>
  JobQueue.use((queue) => queue.enqueue(payloads))

/** How many jobs are pending, claimed, done and failed. @category combinators @since 0.1.0 */
export const stats: Effect.Effect<Stats, JobQueueError, JobQueue> = JobQueue.use((queue) => queue.stats)

/**
 * Options of {@link layerWorker}: those of a `Worker` pool, `commit`, and `batch`.
 *
 * @category models
 * @since 0.1.0
 */
export interface WorkerOptions<A, E> extends Omit<Worker.Options<Job, E | JobQueueError>, "onGiveUp"> {
  /**
   * Runs inside the transaction that marks the job done, with `process`'s
   * result: write the job's results through `sql` here and they are written
   * exactly once. Failing rolls the done mark back (the unit fails).
   */
  readonly commit?: ((sql: SqlClient, job: Job, result: A) => Effect.Effect<unknown, E | SqlError>) | undefined
  /** At most this many jobs claimed in one statement (as many as workers wait). Default: the number of workers. */
  readonly batch?: number | undefined
}

/**
 * The default policy of a job worker: retry three times (1 s, 2 s, 4 s), then
 * mark the job failed and go on.
 *
 * @category constants
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
 *   commit: (sql, job) => sql`INSERT INTO resized (job) VALUES (${job.id})`
 * })
 * const Jobs = JobQueue.layer({ path: "jobs.db", setup: (sql) => sql`CREATE TABLE IF NOT EXISTS resized (job BIGINT)` })
 * Main.runMain(Resize.pipe(Layer.provide(Jobs)))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const consume = <A, E, R>(
  name: string,
  process: (job: Job) => Effect.Effect<A, E, R>,
  options: WorkerOptions<A, E> = {}
): Effect.Effect<Worker.Worker, InvalidOption, JobQueue | Quit.Quit | Scope.Scope | R> =>
  Effect.gen(function*() {
    const queue = yield* JobQueue
    const batch = yield* positive(`${name}: batch`, options.batch, options.workers ?? 1)
    const { commit } = options
    const unit = (job: Job) =>
      Effect.flatMap(process(job), (result) =>
        queue.complete(job, commit === undefined ? undefined : (sql) => commit(sql, job, result))).pipe(
          Effect.flatMap((done) =>
            done ? Effect.void : Effect.logWarning(`${name}: job ${job.id} lost its claim; another worker owns it now`)
          )
        )
    const giveUp = (job: Job, cause: Cause.Cause<E | JobQueueError>) =>
      queue.fail(job, describe(cause)).pipe(
        Effect.catch((error) => Effect.logError(`${name}: could not mark job ${job.id} failed`, error)),
        Effect.asVoid
      )
    const source: Worker.Source<Job> = {
      open: consumer.open({ claim: queue.claimBatch, releaseUnstarted: queue.release }, {
        batch,
        interval: queue.pollInterval,
        wake: queue.enqueued
      })
    }
    return yield* Worker.consume(name, source, unit, {
      ...options,
      onFailure: options.onFailure ?? defaultPolicy,
      onGiveUp: giveUp
    })
  })

/**
 * {@link consume} as a layer; provide it with {@link layer}.
 *
 * @category layers
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
