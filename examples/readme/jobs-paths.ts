import { JobQueue } from "effect-graceful"

export const OnSqlite = JobQueue.layer({ path: "jobs.db" }) // SQLite: a file, no server
export const OnPostgres = JobQueue.layer({ path: "postgres://app@db.internal:5432/app" }) // PostgreSQL: any number of machines
export const FromEnvironment = JobQueue.layerConfig() // JOBS_DB: either of the two
