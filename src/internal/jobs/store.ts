/**
 * The job queue's store on effect/sql's `SqlClient`, the same on SQLite and
 * PostgreSQL: every state change is one statement, or one transaction with
 * the user's `commit`, so a claim, a done mark or a release is
 * all-or-nothing; a claim is handed out only once its statement has
 * committed.
 *
 * States: `pending → claimed → done | failed`; `claimed → pending` when its
 * owner gives it back (a clean shutdown); a claim whose lease has passed (its
 * owner died) is claimable again.
 *
 * Claims are fenced: each claim statement has a token of its own, written on
 * the rows it claims, and a completion, failure or renewal names it — with a
 * stale token (the lease passed and another worker claimed the job) it is
 * refused. The token stays on a done row, so a completion whose answer was
 * lost (a `COMMIT` that committed, then the connection dropped) can learn,
 * when retried, that the job is done by its own claim.
 *
 * Failures that may pass (a lock, a full disk, a lost connection) are retried
 * on a `Schedule` — short waits growing to one second, jittered — and logged
 * with the error that happened. Nothing waits inside SQLite for longer than
 * its busy timeout (a few milliseconds): the event loop, the signals and the
 * probes keep running while another process holds the lock.
 *
 * @internal
 */
import type { Fiber } from "effect"
import { Cause, Clock, Duration, Effect, Exit, Metric, Option, Schedule } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { randomUUID } from "node:crypto"
import * as batch from "./batch.ts"
import { describe, isTransient, JobQueueError } from "./errors.ts"
import type { Query, Statements } from "./sql.ts"

/** @internal */
export interface Job {
  readonly id: number
  readonly payload: string
  /** How many times it has been claimed and started, this claim included. */
  readonly attempts: number
  /** This claim's token: only its holder can mark the job done. */
  readonly claim: string
}

/** @internal */
export interface Stats {
  readonly pending: number
  readonly claimed: number
  readonly done: number
  readonly failed: number
}

const retriesCounter = Metric.counter("effect_graceful_job_store_retries_total", {
  description: "Job store operations retried after a failure that may pass (a lock, a full disk, a lost connection)",
  incremental: true
})

/** Waits between attempts: 10 ms doubling to 1 s, then every second, jittered. @internal */
export const retrySchedule: Schedule.Schedule<Duration.Duration> = Schedule.exponential("10 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(1)))),
  Schedule.jittered
)

/**
 * How an operation retries: `"forever"` until it succeeds or is interrupted
 * (the drain deadline, the close timeout, the halt of a claim), every failure;
 * `"transient"` until interrupted, failures that may pass only; or for at
 * most a duration, failures that may pass only.
 */
type Retry = "forever" | "transient" | Duration.Duration

/**
 * Runs `effect`, retrying as `retry` says; logs the first failure and every
 * tenth with the error that happened, and the recovery.
 *
 * @internal
 */
export const retrying = <A, E>(
  operation: string,
  effect: Effect.Effect<A, E>,
  retry: Retry
): Effect.Effect<A, JobQueueError | Exclude<E, SqlError>> =>
  Effect.suspend(() => {
    let failures = 0
    const counter = Metric.withAttributes(retriesCounter, { operation })
    const retried = Effect.retry(
      Effect.tapError(effect, (error) =>
        Effect.suspend(() => {
          if (retry !== "forever" && !isTransient(error)) return Effect.void
          failures++
          const log = failures === 1 || failures % 10 === 0
            ? Effect.logWarning(`job queue: ${operation} failed (attempt ${failures}); retrying: ${describe(error)}`)
            : Effect.void
          return Effect.andThen(Metric.update(counter, 1), log)
        })),
      {
        while: (error) => retry === "forever" || isTransient(error),
        schedule: typeof retry === "string" ? retrySchedule : retrySchedule.pipe(Schedule.upTo({ duration: retry }))
      }
    )
    return retried.pipe(
      Effect.tap(() => failures > 0 ? Effect.logInfo(`job queue: ${operation} succeeded after ${failures} failed attempts`) : Effect.void),
      Effect.mapError((error) => isJobQueueError(error) ? error : wrap(operation, error))
    )
  }) as Effect.Effect<A, JobQueueError | Exclude<E, SqlError>>

const isJobQueueError = (error: unknown): error is JobQueueError => error instanceof JobQueueError

// A store failure becomes a JobQueueError; the user's own errors from `commit` pass through as they are.
const wrap = (operation: string, error: unknown): unknown =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "SqlError"
    ? new JobQueueError({ operation, cause: error })
    : error

type Row = Record<string, unknown>

/** @internal */
export interface Store {
  readonly owner: string
  readonly sql: SqlClient
  readonly statements: Statements
  readonly leaseMillis: number
  readonly enqueue: (payloads: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<number>, JobQueueError>
  readonly claim: (n: number) => Effect.Effect<ReadonlyArray<Job>, JobQueueError>
  readonly complete: <E>(
    job: Job,
    commit: ((sql: SqlClient) => Effect.Effect<unknown, E>) | undefined
  ) => Effect.Effect<boolean, JobQueueError | Exclude<E, SqlError>>
  readonly fail: (job: Job, error: string) => Effect.Effect<boolean, JobQueueError>
  readonly renew: (job: Job) => Effect.Effect<boolean, JobQueueError>
  readonly renewOwned: Effect.Effect<void, JobQueueError>
  readonly releaseUnstarted: (jobs: ReadonlyArray<Job>) => Effect.Effect<number, JobQueueError>
  readonly releaseOwned: Effect.Effect<number, JobQueueError>
  readonly stats: Effect.Effect<Stats, JobQueueError>
  /** Completes when no completion is being written or waits to be. */
  readonly idle: Effect.Effect<void>
}

/** The store on `sql`; its operations retry as documented on each. @internal */
export const make = (
  sql: SqlClient,
  statements: Statements,
  leaseMillis: number,
  fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
): Store => {
  const owner = randomUUID()
  let claims = 0
  const run = (query: Query) => sql.unsafe<Row>(query[0], query[1])
  const now = Clock.currentTimeMillis
  const ids = (rows: ReadonlyArray<Row>) => rows.map((row) => Number(row["id"]))

  // A settle that found no claimed row: was it ours already (a retried completion whose first COMMIT went through)?
  const settle = (job: Job, query: (now: number) => Query, state: "done" | "failed") =>
    Effect.flatMap(now, (t) => run(query(t))).pipe(
      Effect.flatMap((rows) =>
        rows.length > 0 ? Effect.succeed(true) : Effect.map(run(statements.settled(job.id)), (found) =>
          found.length > 0 && found[0]!["state"] === state && found[0]!["claim"] === job.claim)
      )
    )

  const completions = batch.make({
    max: 200,
    fork,
    single: (write) => retrying("complete", write._tag === "Commit" ? sql.withTransaction(write.effect) : write.effect, "transient"),
    // One transaction: the plain done marks in one statement (a mark it did not make is checked alone: a
    // retried COMMIT's), each commit in a savepoint; a failure that may pass anywhere retries the whole batch.
    batch: (writes) =>
      retrying(
        "complete",
        sql.withTransaction(Effect.gen(function*() {
          const plain = writes.flatMap((write) => write._tag === "Plain" ? [write.claim] : [])
          const marked = plain.length === 0
            ? new Set<number>()
            : new Set(ids(yield* Effect.flatMap(now, (t) => run(statements.completeMany(plain, t)))))
          const exits = yield* Effect.forEach(writes, (write) =>
            write._tag === "Plain"
              ? marked.has(write.claim[0]) ? Effect.succeed(Exit.succeed(true)) : Effect.exit(write.effect)
              : Effect.exit(sql.withTransaction(write.effect)))
          const transient = exits.find((exit) => Exit.isFailure(exit) && isTransient(Cause.squash(exit.cause)))
          if (transient !== undefined && Exit.isFailure(transient)) return yield* Effect.failCause(transient.cause)
          return exits.map((exit) => Exit.mapError(exit, (error) => wrap("complete", error)))
        })),
        "transient"
      )
  })

  return {
    owner,
    sql,
    idle: completions.idle,
    statements,
    leaseMillis,
    // A caller waits for the answer: failures that may pass are retried for up to 5 s, then reported.
    enqueue: (payloads) =>
      payloads.length === 0 ? Effect.succeed([]) : retrying(
        "enqueue",
        Effect.flatMap(now, (t) =>
          sql.withTransaction(Effect.forEach(statements.enqueue(payloads, t), (query) => Effect.map(run(query), ids)))
        ).pipe(Effect.map((chunks) => chunks.flat().sort((a, b) => a - b))),
        Duration.seconds(5)
      ),
    // A worker's wait: every failure is retried (and logged) until it succeeds or the wait is cut.
    claim: (n) =>
      retrying(
        "claim",
        Effect.flatMap(now, (t) => {
          const token = `${owner}/${++claims}`
          return Effect.map(run(statements.claim(owner, token, n, t, leaseMillis)), (rows) =>
            rows.map((row) => ({
              id: Number(row["id"]),
              payload: String(row["payload"]),
              attempts: Number(row["attempts"]),
              claim: token
            })).sort((a, b) => a.id - b.id))
        }),
        "forever"
      ),
    // In a unit: retried until done, or cut at the drain deadline; the user's commit failing fails it at once.
    // Completions arriving together are committed together (batch.ts).
    complete: <E>(job: Job, commit: ((sql: SqlClient) => Effect.Effect<unknown, E>) | undefined) => {
      const done = settle(job, (t) => statements.complete(job.id, job.claim, t), "done")
      const effect = commit === undefined
        ? done
        : Effect.flatMap(done, (mine) => mine ? Effect.as(commit(sql), true) : Effect.succeed(false))
      const write: batch.Write = commit === undefined
        ? { _tag: "Plain", effect, claim: [job.id, job.claim] }
        : { _tag: "Commit", effect }
      // Its error is its own write's: the store's wrapped, or the user's commit's E (see `batch.ts`).
      return completions.submit(write) as Effect.Effect<
        boolean,
        JobQueueError | Exclude<E, SqlError>
      >
    },
    fail: (job, error) => retrying("fail", settle(job, (t) => statements.fail(job.id, job.claim, error, t), "failed"), "transient"),
    renew: (job) =>
      retrying(
        "renew",
        Effect.flatMap(now, (t) => Effect.map(run(statements.renew(job.id, job.claim, t, leaseMillis)), (rows) => rows.length > 0)),
        "transient"
      ),
    renewOwned: retrying("renew", Effect.asVoid(Effect.flatMap(now, (t) => run(statements.renewOwned(owner, t, leaseMillis)))), "transient"),
    releaseUnstarted: (jobs) =>
      jobs.length === 0 ? Effect.succeed(0) : retrying(
        "release",
        Effect.map(run(statements.releaseUnstarted(owner, jobs.map((job) => job.id))), (rows) => rows.length),
        "transient"
      ),
    releaseOwned: retrying("release", Effect.map(run(statements.releaseOwned(owner)), (rows) => rows.length), "transient"),
    stats: retrying(
      "stats",
      Effect.map(run(statements.stats), (rows) => {
        const counts = { pending: 0, claimed: 0, done: 0, failed: 0 }
        for (const row of rows) {
          const state = String(row["state"])
          if (state in counts) counts[state as keyof Stats] = Number(row["n"])
        }
        return counts
      }),
      Duration.seconds(5)
    )
  }
}

/** Runs the schema and the user's setup in one transaction (PostgreSQL: under an advisory lock, as processes start together). @internal */
export const setup = <E>(
  sql: SqlClient,
  statements: Statements,
  user: ((sql: SqlClient) => Effect.Effect<unknown, E>) | undefined
): Effect.Effect<void, JobQueueError | Exclude<E, SqlError>> => {
  const lock = statements.dialect === "pg"
    ? Effect.asVoid(sql.unsafe("SELECT pg_advisory_xact_lock(hashtext($1))", [statements.channel]))
    : Effect.void
  const body = Effect.andThen(
    lock,
    Effect.andThen(
      Effect.forEach(statements.schema, (text) => sql.unsafe(text), { discard: true }),
      user === undefined ? Effect.void : user(sql)
    )
  )
  return retrying("setup", Effect.asVoid(sql.withTransaction(body)), "transient")
}

/** @internal */
export const firstOption = <A>(items: ReadonlyArray<A>): Option.Option<A> => Option.fromUndefinedOr(items[0])
