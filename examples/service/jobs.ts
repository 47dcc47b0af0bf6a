/**
 * The job queue of the example: a SQLite file (the database, closed last, as a
 * closer) and a pool of workers. Each job's result is written in the
 * transaction that marks it done, so a job is recorded exactly once or stays
 * pending — whatever moment a SIGTERM (or SIGKILL) arrives.
 */
import { type Duration, Effect } from "effect"
import type { DatabaseSync } from "node:sqlite"
import { JobQueue } from "../../src/index.ts"

const createResults = (db: DatabaseSync) =>
  db.exec("CREATE TABLE IF NOT EXISTS results (job INTEGER NOT NULL, pid INTEGER NOT NULL, done_at INTEGER NOT NULL)")

/** The queue, in the SQLite file at `path`; a SIGKILLed process's claims expire after `lease`. */
export const Database = (path: string, lease?: Duration.Duration) =>
  JobQueue.layer({ path, lease, setup: createResults, pollInterval: "200 millis" })

/** `workers` fibers, each processing a job in `jobMillis`. */
export const Workers = (workers: number, jobMillis: number) =>
  JobQueue.layerWorker("jobs", () => Effect.as(Effect.sleep(jobMillis), process.pid), {
    workers,
    commit: (db, job, pid) =>
      db.prepare("INSERT INTO results (job, pid, done_at) VALUES (?, ?, ?)").run(job.id, pid, Date.now())
  })
