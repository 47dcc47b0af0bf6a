/**
 * The job queue's databases for tests: a SQLite file in a temporary folder,
 * or a fresh database on a PostgreSQL server started for the test file — so
 * that one suite runs on both dialects.
 */
import { Duration, Effect, Schedule } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { afterAll } from "vitest"
import { connect } from "../../src/internal/jobs/connect.ts"
import * as sqls from "../../src/internal/jobs/sql.ts"
import * as store from "../../src/internal/jobs/store.ts"
import { type Postgres, startPostgres } from "./postgres.ts"
import { tempDir } from "./temp.ts"

export interface Dialect {
  readonly name: "SQLite" | "PostgreSQL"
  /** A fresh, empty database: a file path or a URL. */
  readonly database: () => Promise<string>
}

let server: Promise<Postgres> | undefined
afterAll(async () => {
  const started = server
  server = undefined
  if (started !== undefined) await (await started).stop()
})

/** The file's PostgreSQL server, started on first use. */
export const postgres = (): Promise<Postgres> => server ??= startPostgres()

let databases = 0
export const sqlite: Dialect = { name: "SQLite", database: async () => `${tempDir("jobs")}/jobs.db` }
export const pg: Dialect = {
  name: "PostgreSQL",
  database: async () => {
    const server = await postgres()
    const name = `test_${process.pid}_${++databases}`
    server.psql(`CREATE DATABASE ${name}`)
    return server.url.replace(/\/postgres$/, `/${name}`)
  }
}
export const dialects: ReadonlyArray<Dialect> = [sqlite, pg]

/** The store of `database` in the current scope, with no lease renewal: a process that stopped renewing (it hangs, or died). */
export const storeIn = (database: string, leaseMillis = 30_000, setup?: (sql: SqlClient) => Effect.Effect<unknown, SqlError>) =>
  Effect.gen(function*() {
    const connection = yield* connect(database, { busyTimeout: Duration.millis(20), maxConnections: 2 })
    const statements = database.startsWith("postgres") ? sqls.pg("jobs") : sqls.sqlite("jobs")
    yield* store.setup(connection.sql, statements, setup)
    return store.make(connection.sql, statements, leaseMillis, Effect.runForkWith(yield* Effect.context<never>()))
  })

/** Runs `f` on the store of `database` (made with the queue's schema and `setup`), outside any queue: another process. */
export const withStore = <A, E>(
  database: string,
  f: (jobs: store.Store) => Effect.Effect<A, E>,
  setup?: (sql: SqlClient) => Effect.Effect<unknown, SqlError>
): Promise<A> =>
  Effect.runPromise(Effect.scoped(Effect.flatMap(storeIn(database, 30_000, setup), f)))

/** Polls `check` on the real clock (I/O of a real server needs it) until it holds; fails after `tries`. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, tries = 2_000): Effect.Effect<void, E | Error, R> =>
  Effect.flatMap(
    Effect.repeat(
      Effect.flatMap(check, (ok) => ok ? Effect.succeed(true) : Effect.as(Effect.promise(() => new Promise((r) => setTimeout(r, 5))), false)),
      { until: (ok) => ok, schedule: Schedule.recurs(tries) }
    ),
    (ok) => ok ? Effect.void : Effect.fail(new Error("the condition never held"))
  )
