/**
 * The SQLite job queue while another process holds the write lock (a
 * migration, an admin script: a child in `BEGIN IMMEDIATE`), under real
 * signals: store calls retry in short steps instead of waiting inside SQLite,
 * so the process keeps hearing its signals; the lock never fails the app; a
 * SIGTERM under the lock exits 0 with its report while the lock is still
 * held; and nothing is lost or done twice.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { setTimeout as sleep } from "node:timers/promises"
import { shutdownReport } from "../reliability/support/report.ts"
import { withStore } from "../support/jobs.ts"
import { tempDir } from "../support/temp.ts"
import { createResults } from "./fixtures/results.ts"
import { type Child, fixture, start } from "./harness.ts"

const service = fixture("jobs.ts")
const children: Array<ChildProcess> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
})
const run = (env: Record<string, string>): Child => {
  const child = start(service, { LOG_FORMAT: "json", ...env })
  children.push(child.process)
  return child
}

const newDatabase = async (jobs: number) => {
  const path = join(tempDir("jobs-lock"), "jobs.db")
  await withStore(path, (store) => store.enqueue(Array.from({ length: jobs }, (_, n) => `job ${n}`)), createResults)
  return path
}

/** A process that takes the write lock and holds it until `release()`. */
const holdLock = async (path: string) => {
  const holder = spawn(process.execPath, ["-e", `
    const { DatabaseSync } = require("node:sqlite")
    const db = new DatabaseSync(${JSON.stringify(path)}, { timeout: 10000 })
    db.exec("BEGIN IMMEDIATE")
    console.log("LOCKED")
    process.stdin.once("data", () => { db.exec("COMMIT"); console.log("RELEASED") })
  `], { stdio: ["pipe", "pipe", "inherit"] })
  children.push(holder)
  await once(holder.stdout!, "data")
  let released = false
  return {
    get released() {
      return released
    },
    release: async () => {
      holder.stdin!.write("release\n")
      await once(holder.stdout!, "data")
      released = true
      holder.kill()
    }
  }
}

const readJobs = (path: string) => {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    const jobs = db.prepare("SELECT id, state FROM jobs ORDER BY id").all() as Array<{ id: number; state: string }>
    const results = new Map(
      (db.prepare("SELECT job_id, count(*) AS n FROM results GROUP BY job_id").all() as Array<{ job_id: number; n: number }>)
        .map((row) => [row.job_id, row.n])
    )
    return { jobs, results }
  } finally {
    db.close()
  }
}

/** Every job is there, done with exactly one result or not done with none. */
const assertNothingLost = (path: string, enqueued: number) => {
  const { jobs, results } = readJobs(path)
  assert.strictEqual(jobs.length, enqueued)
  for (const job of jobs) assert.strictEqual(results.get(job.id) ?? 0, job.state === "done" ? 1 : 0, `job ${job.id} (${job.state})`)
  return jobs.filter((job) => job.state === "done").length
}

const lockWarning = /failed \(attempt \d+\); retrying: the database is locked by another connection \(SQLITE_BUSY\)/

describe("the job queue while another process holds the write lock", () => {
  it("the lock never fails the app: it retries (logged) until the lock is released, then finishes every job once", async () => {
    const path = await newDatabase(100)
    const lock = await holdLock(path)
    const child = run({ JOBS_DB: path, WORKERS: "4", EXIT_WHEN_DONE: "1" })
    await child.waitFor(lockWarning)
    await child.waitFor(/attempt 10\b/)
    assert.isNull(child.process.exitCode, "still running, ten attempts later")
    await lock.release()
    const { code } = await child.exited(30_000)
    assert.strictEqual(code, 0, child.output())
    assert.strictEqual(assertNothingLost(path, 100), 100)
  }, 60_000)

  it("SIGTERM under the lock: exit 0 with the report while the lock is still held; a restart finishes every job once", async () => {
    const path = await newDatabase(200)
    const env = { JOBS_DB: path, WORKERS: "4", JOB_MS: "40", JOBS_LEASE: "1s", DRAIN_TIMEOUT: "1s", SHUTDOWN_TIMEOUT: "3s" }
    const child = run(env)
    await child.waitFor(/READY/)
    while (readJobs(path).results.size < 10) await sleep(10)
    const lock = await holdLock(path)
    await child.waitFor(lockWarning)
    child.signal("SIGTERM")
    const { code } = await child.exited(30_000)
    assert.isFalse(lock.released, "it exited while the lock was held")
    assert.strictEqual(code, 0, child.output())
    const report = shutdownReport(child.output())
    assert.strictEqual(report.exitCode, 0)
    const rows = Object.fromEntries(report.rows.map((row) => [row.name, row]))
    // Units could not mark their jobs done under the lock: cut at the drain timeout.
    assert.strictEqual(rows["jobs"]?.outcome, "cut", child.output())
    // The release of their claims could not commit either: abandoned at the close timeout; the lease gives them back.
    assert.include(["timed out", "done"], rows["jobs db"]?.outcome, child.output())
    await lock.release()
    assertNothingLost(path, 200)

    const restart = run({ ...env, EXIT_WHEN_DONE: "1" })
    const { code: restarted } = await restart.exited(30_000)
    assert.strictEqual(restarted, 0, restart.output())
    assert.strictEqual(assertNothingLost(path, 200), 200)
  }, 90_000)
})
