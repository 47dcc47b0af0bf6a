import { Effect, Layer } from "effect"
import { JobQueue, Main } from "effect-graceful"

declare const resize: (image: string) => Effect.Effect<number>

const Jobs = JobQueue.layer({
  path: "jobs.db",
  setup: (db) => db.exec("CREATE TABLE IF NOT EXISTS resized (job INTEGER NOT NULL, bytes INTEGER NOT NULL)")
})

// `commit` runs in the transaction that marks the job done: its writes happen exactly once.
const Resizer = JobQueue.layerWorker("resizer", (job) => resize(job.payload), {
  workers: 4,
  commit: (db, job, bytes) => db.prepare("INSERT INTO resized (job, bytes) VALUES (?, ?)").run(job.id, bytes)
})

export const enqueue = JobQueue.enqueue(["cat.png", "dog.png"]) // JobQueue.stats counts them

Main.runMain(Resizer.pipe(Layer.provide(Jobs)))
