/**
 * Opens the job queue's database: a SQLite file through
 * `@effect/sql-sqlite-node`, or a PostgreSQL server through `@effect/sql-pg`.
 * Each driver is loaded when a queue on it is opened, not when the library is
 * imported: a program needs only the driver it uses.
 *
 * @internal
 */
import { Deferred, Duration, Effect, Exit, Queue, Redacted, Scope } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import type { SqlClient } from "effect/sql/SqlClient"
import { JobQueueError } from "./errors.ts"
import { retrying, retrySchedule } from "./store.ts"
import type { Dialect } from "./sql.ts"

/** A file path or a PostgreSQL URL. @internal */
export const dialectOf = (database: string): Dialect => /^postgres(ql)?:\/\//i.test(database) ? "pg" : "sqlite"

/** The URL without its password, for logs and reports. @internal */
export const redact = (database: string): string => {
  if (dialectOf(database) === "sqlite") return database
  try {
    const url = new URL(database)
    if (url.password !== "") url.password = "***"
    return url.toString()
  } catch {
    return "postgres://(unparsable URL)"
  }
}

/** An open client, and what listens for enqueues on other machines (PostgreSQL). @internal */
export interface Connection {
  readonly sql: SqlClient
  /** Calls `wake` on every enqueue anywhere, until the scope closes (PostgreSQL); SQLite hears only its own process. */
  readonly listen: (channel: string, wake: () => void) => Effect.Effect<void, never, Scope.Scope>
}

/** @internal */
export interface ConnectOptions {
  /** SQLite: how long one statement may wait for a lock inside SQLite (it blocks the event loop meanwhile). */
  readonly busyTimeout: Duration.Duration
  /** PostgreSQL: the pool's size. */
  readonly maxConnections: number
}

const load = <A>(name: string, module: () => Promise<A>) =>
  Effect.tryPromise({
    try: module,
    catch: (cause) =>
      new JobQueueError({
        operation: "open",
        cause: new Error(`the job queue needs the package ${name} (npm install ${name}): ${String(cause)}`)
      })
  })

/**
 * Opens a client in `scope`, retrying failures that may pass (a lock, a
 * server not up yet) until it succeeds or is interrupted: each attempt in a
 * scope of its own, closed if it fails.
 *
 * @internal
 */
export const connect = (
  database: string,
  options: ConnectOptions
): Effect.Effect<Connection, JobQueueError, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const attempt = <A, E>(open: Effect.Effect<A, E, Scope.Scope | Reactivity.Reactivity>) =>
      Effect.flatMap(Scope.fork(scope), (inner) =>
        open.pipe(
          Effect.provide(Reactivity.layer),
          Scope.provide(inner),
          Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(inner, exit) : Effect.void)
        ))
    if (dialectOf(database) === "sqlite") {
      const { SqliteClient } = yield* load("@effect/sql-sqlite-node", () => import("@effect/sql-sqlite-node"))
      const sql = yield* retrying(
        "open",
        attempt(SqliteClient.make({ filename: database, busyTimeout: options.busyTimeout }).pipe(
          // A committed done mark survives a crash of the machine, not only of the process.
          Effect.tap((client) => client.unsafe("PRAGMA synchronous = FULL"))
        )),
        "transient"
      )
      return { sql, listen: () => Effect.void }
    }
    const { PgClient } = yield* load("@effect/sql-pg", () => import("@effect/sql-pg"))
    const client = yield* retrying(
      "open",
      attempt(PgClient.make({
        url: Redacted.make(database),
        maxConnections: options.maxConnections,
        applicationName: "effect-graceful JobQueue"
      }).pipe(Effect.tap((client) => client.unsafe("SELECT 1")))),
      "transient"
    )
    return {
      sql: client,
      // A connection of its own: LISTEN holds it. Lost, it is opened again on the retry schedule; polling covers the gap.
      listen: (channel, wake) =>
        Effect.gen(function*() {
          const listening = yield* Deferred.make<void>()
          const session = Effect.scoped(Effect.gen(function*() {
            const notifications = yield* client.listen(channel)
            yield* Deferred.succeed(listening, undefined)
            // A listener that (re)starts may have missed enqueues: the workers look once.
            wake()
            while (true) {
              yield* Queue.take(notifications)
              wake()
            }
          }))
          yield* Effect.forkScoped(session.pipe(
            Effect.tapError((error) => Effect.logWarning(`job queue: listening for enqueues failed; polling until it is back`, error)),
            Effect.retry({ schedule: retrySchedule }),
            Effect.ignore
          ))
          // The first LISTEN is in place before the queue is used (or its first failure is being retried).
          yield* Deferred.await(listening).pipe(Effect.timeoutOption(Duration.seconds(5)))
        })
    }
  })
