import { Effect, Layer } from "effect"
import { JobQueue, Main } from "effect-graceful"

declare const resize: (image: string) => Effect.Effect<number>

// A SQLite file here; a postgres:// URL runs the same queue on PostgreSQL, shared by many machines.
const Jobs = JobQueue.layer({
  path: "jobs.db",
  setup: (sql) => sql`CREATE TABLE IF NOT EXISTS resized (job BIGINT NOT NULL, bytes INTEGER NOT NULL)`
})

// `commit` runs in the transaction that marks the job done: its writes happen exactly once.
const Resizer = JobQueue.layerWorker("resizer", (job) => resize(job.payload), {
  workers: 4,
  commit: (sql, job, bytes) => sql`INSERT INTO resized (job, bytes) VALUES (${job.id}, ${bytes})`
})

export const enqueue = JobQueue.enqueue(["cat.png", "dog.png"]) // JobQueue.stats counts them

Main.runMain(Resizer.pipe(Layer.provide(Jobs)))
