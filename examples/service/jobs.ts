/**
 * The job queue of the example: a SQLite file, or a PostgreSQL database when
 * JOBS_DB is a `postgres://` URL (the database, closed last, as a closer), and
 * a pool of workers. Each job's result is written in the transaction that
 * marks it done, so a job is recorded exactly once or stays pending —
 * whatever moment a SIGTERM (or SIGKILL) arrives, on one machine or many.
 */
import { type Duration, Effect } from "effect"
import { JobQueue } from "../../src/index.ts"

/** The queue at `database` (a file path or a postgres:// URL); a SIGKILLed process's claims expire after `lease`. */
export const Database = (database: string, lease?: Duration.Duration) =>
  JobQueue.layer({
    path: database,
    lease,
    pollInterval: "200 millis",
    // The same table on both databases.
    setup: (sql) => sql`CREATE TABLE IF NOT EXISTS results (job BIGINT NOT NULL, pid INTEGER NOT NULL, done_at BIGINT NOT NULL)`
  })

/** `workers` fibers, each processing a job in `jobMillis`. */
export const Workers = (workers: number, jobMillis: number) =>
  JobQueue.layerWorker("jobs", () => Effect.as(Effect.sleep(jobMillis), process.pid), {
    workers,
    commit: (sql, job, pid) => sql`INSERT INTO results (job, pid, done_at) VALUES (${job.id}, ${pid}, ${Date.now()})`
  })
