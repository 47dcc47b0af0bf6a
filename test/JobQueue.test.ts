/**
 * The SQLite job queue in process, on real files in temp dirs, with TestClock
 * driving processing times, leases, poll intervals and retries.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Quit } from "../src/index.ts"
import { open } from "../src/internal/jobs/store.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as Worker from "../src/Worker.ts"
import { captureLogs } from "./support/logs.ts"
import { tempDir } from "./support/temp.ts"
import { rows } from "./support/quit.ts"

const tempDb = () => join(tempDir("jobs"), "jobs.db")
const setup = (db: DatabaseSync) => db.exec("CREATE TABLE IF NOT EXISTS results (job_id INTEGER NOT NULL, value TEXT)")
const recordResult = (db: DatabaseSync, job: JobQueue.Job, value: string) =>
  void db.prepare("INSERT INTO results (job_id, value) VALUES (?, ?)").run(job.id, value)

/** Reads the file through a connection of its own, as another process would. */
const read = <A>(path: string, query: string): Array<A> => {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    return db.prepare(query).all() as Array<A>
  } finally {
    db.close()
  }
}
const resultsPerJob = (path: string) =>
  read<{ job_id: number; n: number }>(path, "SELECT job_id, count(*) AS n FROM results GROUP BY job_id ORDER BY job_id")
    .map((row) => [row.job_id, row.n])

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, Quit.layer())
/** For tests whose failing units log on purpose. */
const quietly = <A, E, R>(effect: Effect.Effect<A, E, R>) => withQuit(captureLogs().provide(effect))
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

/** Builds a pool on a fresh queue in a scope of its own; returns the queue and the scope. */
const start = <A, E>(
  path: string,
  process: (job: JobQueue.Job) => Effect.Effect<A, E>,
  options: JobQueue.WorkerOptions<A, E>,
  queue: Partial<JobQueue.Options> = {}
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const layer = JobQueue.layerWorker("jobs", process, options).pipe(
      Layer.provideMerge(JobQueue.layer({ path, setup, ...queue }))
    )
    const context = yield* Layer.buildWithScope(layer, scope)
    return { queue: Context.get(context, JobQueue.JobQueue), scope }
  })

describe("JobQueue", () => {
  it.effect("a pool claims each job once, processes it, and marks it done with its result in one transaction", () =>
    Effect.gen(function*() {
      const path = tempDb()
      const { queue, scope } = yield* start(
        path,
        (job) => Effect.sleep("100 millis").pipe(Effect.as(job.payload.toUpperCase())),
        { workers: 3, commit: recordResult }
      )
      const ids = yield* queue.enqueue(["a", "b", "c", "d", "e", "f", "g"])
      assert.deepStrictEqual(ids, [1, 2, 3, 4, 5, 6, 7])
      yield* settle
      assert.deepStrictEqual(yield* queue.stats, { pending: 4, claimed: 3, done: 0, failed: 0 })
      yield* TestClock.adjust("100 millis")
      yield* settle
      assert.deepStrictEqual(yield* queue.stats, { pending: 1, claimed: 3, done: 3, failed: 0 })
      yield* TestClock.adjust("200 millis")
      assert.deepStrictEqual(yield* queue.stats, { pending: 0, claimed: 0, done: 7, failed: 0 })
      assert.deepStrictEqual(read(path, "SELECT job_id, value FROM results ORDER BY job_id").map((r) => Object.values(r as object)), [
        [1, "A"], [2, "B"], [3, "C"], [4, "D"], [5, "E"], [6, "F"], [7, "G"]
      ])
      yield* Scope.close(scope, Exit.void)
    }).pipe(withQuit))

  it.effect("a clean close finishes the jobs in progress and releases the claim it could not finish", () => {
    const { logs, provide } = captureLogs()
    return Effect.gen(function*() {
      const path = tempDb()
      const { queue, scope } = yield* start(
        path,
        (job) => Effect.sleep(job.payload === "slow" ? "1 minute" : "500 millis").pipe(Effect.as(job.payload)),
        { workers: 2, drainTimeout: "1 second", commit: recordResult }
      )
      yield* queue.enqueue(["fast", "slow", "fast", "fast"])
      yield* settle
      yield* TestClock.adjust("200 millis")
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      yield* TestClock.adjust("300 millis")
      assert.deepStrictEqual(resultsPerJob(path), [[1, 1]], "the job in progress finished while draining")
      yield* TestClock.adjust("700 millis")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(
        read(path, "SELECT id, state, attempts, owner FROM jobs ORDER BY id").map((r) => Object.values(r as object)),
        [[1, "done", 1, null], [2, "pending", 1, null], [3, "pending", 0, null], [4, "pending", 0, null]],
        "nothing new was claimed after closing began; the job cut at the drain timeout is pending again"
      )
      assert.deepStrictEqual(resultsPerJob(path), [[1, 1]])
      const byName = Object.fromEntries((yield* rows).map((row) => [row.name, row]))
      assert.deepInclude(byName["jobs"], { outcome: "cut", detail: "1 cut at the drain timeout" })
      assert.strictEqual(byName["jobs db"]!.outcome, "done")
      assert.isTrue(logs.some((log) => log.text === "jobs db: released 1 claimed jobs to pending"))
    }).pipe(provide, withQuit)
  })

  it.effect("an enqueue in this process wakes idle workers at once; an empty poll waits its interval", () =>
    Effect.gen(function*() {
      const path = tempDb()
      const { queue, scope } = yield* start(path, () => Effect.succeed("ok"), { workers: 2, commit: recordResult }, {
        pollInterval: "1 hour"
      })
      yield* settle
      yield* queue.enqueue(["now"])
      yield* settle
      assert.deepStrictEqual(yield* queue.stats, { pending: 0, claimed: 0, done: 1, failed: 0 }, "no clock moved")
      // Another process enqueues: only the poll interval finds it.
      const other = yield* Effect.promise(() => open(path))
      other.enqueue(["later"], 0)
      other.db.close()
      yield* settle
      assert.strictEqual((yield* queue.stats).pending, 1)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual((yield* queue.stats).done, 2)
      yield* Scope.close(scope, Exit.void)
    }).pipe(withQuit))

  it.effect("by default a failing job is retried after 1, 2 and 4 s, then marked failed with its error", () =>
    Effect.gen(function*() {
      const path = tempDb()
      let runs = 0
      const { queue, scope } = yield* start(path, () => Effect.suspend(() => (runs++, Effect.fail("printer on fire"))), {})
      yield* queue.enqueue(["print"])
      yield* settle
      yield* TestClock.adjust("6999 millis")
      assert.strictEqual(runs, 3)
      assert.strictEqual((yield* queue.stats).claimed, 1)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(runs, 4)
      assert.deepStrictEqual(yield* queue.stats, { pending: 0, claimed: 0, done: 0, failed: 1 })
      assert.deepStrictEqual(read(path, "SELECT state, attempts, error FROM jobs"), [
        { state: "failed", attempts: 1, error: "printer on fire" }
      ])
      yield* Scope.close(scope, Exit.void)
    }).pipe(quietly))

  it.effect("a commit that throws rolls the done mark back: no result, and the job is not done", () =>
    Effect.gen(function*() {
      const path = tempDb()
      const { queue, scope } = yield* start(path, () => Effect.succeed("value"), {
        onFailure: Worker.logAndContinue,
        commit: (db, job, value) => {
          recordResult(db, job, value)
          throw new Error("disk full")
        }
      })
      yield* queue.enqueue(["x"])
      yield* settle
      assert.deepStrictEqual(resultsPerJob(path), [])
      assert.deepStrictEqual(read(path, "SELECT state, error FROM jobs"), [
        { state: "failed", error: "job queue: complete failed: disk full" }
      ])
      yield* Scope.close(scope, Exit.void)
    }).pipe(quietly))

  it.effect("a retry backoff is cut by closing; the job goes back to pending", () =>
    Effect.gen(function*() {
      const path = tempDb()
      const { queue, scope } = yield* start(path, () => Effect.fail("flaky"), {
        onFailure: Worker.retry(Schedule.spaced("1 hour"))
      })
      yield* queue.enqueue(["x"])
      yield* settle
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(read(path, "SELECT state, attempts FROM jobs"), [{ state: "pending", attempts: 1 }])
    }).pipe(quietly))
})

describe("JobQueue claims and leases (two processes on one file)", () => {
  it("a claim whose lease has passed is claimable again, and the first claimant can no longer mark it done", async () => {
    const path = tempDb()
    const [a, b] = [await open(path), await open(path)]
    setup(a.db)
    a.enqueue(["x"], 0)
    const first = a.claim(0, 1000)!
    assert.isUndefined(b.claim(999, 1000), "the lease still holds")
    const second = b.claim(1000, 1000)!
    assert.strictEqual(second.id, first.id)
    assert.strictEqual(second.attempts, 2)
    assert.isFalse(a.complete(first, 1001, (db) => recordResult(db, first, "a")), "a lost its claim")
    assert.isTrue(b.complete(second, 1002, (db) => recordResult(db, second, "b")))
    assert.deepStrictEqual(b.stats(), { pending: 0, claimed: 0, done: 1, failed: 0 })
    assert.deepStrictEqual(read(path, "SELECT job_id, value FROM results"), [{ job_id: 1, value: "b" }])
    a.db.close()
    b.db.close()
  })

  it("renewal keeps a live owner's claims; release gives back only its own", async () => {
    const path = tempDb()
    const [a, b] = [await open(path), await open(path)]
    a.enqueue(["one", "two", "three"], 0)
    const mine = a.claim(0, 1000)!
    const theirs = b.claim(0, 1000)!
    assert.strictEqual(a.renew(900, 1000), 1)
    assert.strictEqual(b.claim(1500, 1000)?.id, theirs.id, "b's own expired claim is reclaimed, not a's renewed one")
    assert.strictEqual(a.release(), 1)
    assert.deepStrictEqual(
      read(path, "SELECT id, state FROM jobs ORDER BY id").map((r) => Object.values(r as object)),
      [[mine.id, "pending"], [theirs.id, "claimed"], [3, "pending"]]
    )
    a.db.close()
    b.db.close()
  })
})
