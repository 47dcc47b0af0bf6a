/**
 * The SQLite job queue under the faults production walks, in process:
 *
 * - a full disk (a 1 MiB tmpfs, filled up): a claim that could not commit is
 *   never handed out, the error reported is the disk's, the claims retry on a
 *   backoff (not a hot loop), and once space is back every job runs once;
 * - another process holding the write lock (a child in `BEGIN IMMEDIATE`):
 *   store calls retry in short steps instead of waiting inside SQLite, so the
 *   event loop keeps turning; the lock never fails the app, and once it is
 *   released every job runs once.
 *
 * Needs root (mount). TestClock drives the backoffs and poll intervals.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { execFileSync, spawn } from "node:child_process"
import { closeSync, openSync, rmSync, writeSync } from "node:fs"
import { once } from "node:events"
import { DatabaseSync } from "node:sqlite"
import { afterAll } from "vitest"
import { Quit } from "../src/index.ts"
import * as JobQueue from "../src/JobQueue.ts"
import { captureLogs } from "./support/logs.ts"
import { tempDir } from "./support/temp.ts"

const mounts: Array<string> = []
afterAll(() => {
  for (const dir of mounts.splice(0)) execFileSync("umount", ["-l", dir])
})

/** A tmpfs of `size` at a fresh folder. */
const smallDisk = (size: string) => {
  const dir = tempDir("full")
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir])
  mounts.push(dir)
  return dir
}

/** Fills the file system of `dir` to the last byte; returns the filler's path. */
const fill = (dir: string) => {
  const path = `${dir}/filler`
  const fd = openSync(path, "w")
  const block = Buffer.alloc(4096)
  try {
    for (;;) writeSync(fd, block)
  } catch {
    // ENOSPC: full.
  }
  try {
    for (;;) writeSync(fd, block, 0, 1)
  } catch {
    // Not a byte more.
  } finally {
    closeSync(fd)
  }
  return path
}

/** The jobs' states, read through a connection of its own. */
const states = (path: string) => {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    return (db.prepare("SELECT id, state, attempts FROM jobs ORDER BY id").all() as Array<Record<string, unknown>>)
      .map((row) => [row["id"], row["state"], row["attempts"]])
  } finally {
    db.close()
  }
}

/** A pool of one worker that counts its runs per job, on a queue at `path`. */
const pool = (path: string, runs: Map<string, number>) =>
  JobQueue.layerWorker("jobs", (job) => Effect.sync(() => runs.set(job.payload, (runs.get(job.payload) ?? 0) + 1)))
    .pipe(Layer.provideMerge(JobQueue.layer({ path, pollInterval: "1 second" })))

const settle = Effect.repeat(Effect.yieldNow, { times: 50 })

describe("JobQueue on a full disk (SQLite on a 1 MiB tmpfs)", () => {
  it.effect("a claim that could not commit is never handed out; the error is the disk's; retries back off; with space back each job runs once", () => {
    const { logs, provide } = captureLogs()
    return Effect.gen(function*() {
      const path = `${smallDisk("1m")}/jobs.db`
      const runs = new Map<string, number>()
      const scope = yield* Scope.make()
      // Open, with the pool idle (an hour between polls), then the jobs come from another process: no wake.
      const context = yield* Layer.buildWithScope(
        JobQueue.layerWorker("jobs", (job) => Effect.sync(() => runs.set(job.payload, (runs.get(job.payload) ?? 0) + 1)))
          .pipe(Layer.provideMerge(JobQueue.layer({ path, pollInterval: "1 hour" }))),
        scope
      )
      const queue = Context.get(context, JobQueue.JobQueue)
      const other = new DatabaseSync(path)
      other.exec("INSERT INTO jobs (payload, enqueued_at) VALUES ('a', 0), ('b', 0), ('c', 0)")
      other.close()
      const filler = fill(path.replace(/\/jobs\.db$/, ""))

      // An enqueue fails with the disk's error, after retrying for 5 s.
      const enqueue = yield* Effect.forkChild(Effect.exit(queue.enqueue(["d"])), { startImmediately: true })
      yield* TestClock.adjust("1 hour") // the pool polls: its claim cannot commit
      yield* settle
      const enqueued = yield* Fiber.join(enqueue)
      assert.isTrue(Exit.isFailure(enqueued))
      assert.include(String(Exit.isFailure(enqueued) ? enqueued.cause : ""), "the disk is full")
      assert.notInclude(String(Exit.isFailure(enqueued) ? enqueued.cause : ""), "cannot rollback")

      // A minute of full disk: no job handed out, and a bounded number of attempts (a backoff, not a hot loop).
      const attemptsSoFar = () => {
        const last = logs.filter((log) => log.text.includes("claim failed")).at(-1)?.text ?? ""
        return Number(/attempt (\d+)/.exec(last)?.[1] ?? 0)
      }
      yield* TestClock.adjust("10 seconds")
      const before = attemptsSoFar()
      for (let i = 0; i < 60; i++) yield* TestClock.adjust("1 second")
      assert.deepStrictEqual([...runs], [], "process never ran for a claim that did not commit")
      assert.deepStrictEqual(states(path), [[1, "pending", 0], [2, "pending", 0], [3, "pending", 0]])
      const warnings = logs.filter((log) => log.level === "Warn" && log.text.includes("claim failed"))
      assert.isAbove(warnings.length, 0, "the claim's failure is logged")
      assert.include(warnings[0]!.text, "the disk is full (SQLITE_FULL)")
      assert.isFalse(logs.some((log) => log.text.includes("lost its claim")), "no claim was handed out and lost")
      // Every tenth attempt is logged: the count is known to within 10.
      assert.isAtMost(attemptsSoFar() - before, 80, "retried about once a second, not in a loop")

      // Space comes back: each job runs once, and is done.
      rmSync(filler)
      yield* TestClock.adjust("2 seconds")
      yield* settle
      assert.deepStrictEqual([...runs].sort(), [["a", 1], ["b", 1], ["c", 1]])
      assert.deepStrictEqual(states(path), [[1, "done", 1], [2, "done", 1], [3, "done", 1]])
      yield* Scope.close(scope, Exit.void)
    }).pipe(provide, Effect.provide(Quit.layer()))
  })
})

describe("JobQueue with the write lock held by another process", () => {
  it.effect("store calls retry in short steps and say why; the lock never fails the app; released, each job runs once", () => {
    const { logs, provide } = captureLogs()
    return Effect.gen(function*() {
      const path = `${tempDir("locked")}/jobs.db`
      const runs = new Map<string, number>()
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(pool(path, runs), scope)
      const queue = Context.get(context, JobQueue.JobQueue)
      yield* queue.enqueue(["a"])
      yield* settle
      assert.deepStrictEqual([...runs], [["a", 1]])

      // Another process takes the write lock and keeps it until told.
      const holder = spawn(process.execPath, ["-e", `
        const { DatabaseSync } = require("node:sqlite")
        const db = new DatabaseSync(${JSON.stringify(path)})
        db.exec("BEGIN IMMEDIATE")
        console.log("LOCKED")
        process.stdin.once("data", () => { db.exec("COMMIT"); console.log("RELEASED") })
      `], { stdio: ["pipe", "pipe", "inherit"] })
      yield* Effect.promise(() => once(holder.stdout!, "data"))

      // Readers are not blocked (WAL): stats answer under the lock.
      assert.deepStrictEqual(yield* queue.stats, { pending: 0, claimed: 0, done: 1, failed: 0 })
      const enqueue = yield* Effect.forkChild(Effect.exit(queue.enqueue(["b", "c"])), { startImmediately: true })
      for (let i = 0; i < 30; i++) yield* TestClock.adjust("200 millis")
      const enqueued = yield* Fiber.join(enqueue)
      assert.isTrue(Exit.isFailure(enqueued), "an enqueue gives up after 5 s of retries, with the lock's error")
      assert.include(String(Exit.isFailure(enqueued) ? enqueued.cause : ""), "the database is locked by another connection (SQLITE_BUSY)")
      assert.isFalse(yield* Quit.hasFired, "a lock never fails the app")
      assert.isTrue(logs.some((log) => log.level === "Warn" && log.text.includes("SQLITE_BUSY")), "retries are logged")

      // Released: an enqueue goes through and its jobs run once.
      holder.stdin!.write("release\n")
      yield* Effect.promise(() => once(holder.stdout!, "data"))
      holder.kill()
      yield* queue.enqueue(["b", "c"])
      // The claim's backoff (at most 1.2 s) ends, and it finds them.
      yield* TestClock.adjust("2 seconds")
      yield* settle
      assert.deepStrictEqual([...runs].sort(), [["a", 1], ["b", 1], ["c", 1]])
      assert.deepStrictEqual(states(path).map(([, state]) => state), ["done", "done", "done"])
      yield* Scope.close(scope, Exit.void)
    }).pipe(provide, Effect.provide(Quit.layer()))
  })
})
