/**
 * The job queue in process, one suite on both dialects: a SQLite file in a
 * temp dir, and a fresh database on a real PostgreSQL server. TestClock
 * drives processing times, poll intervals and retries; leases are on the
 * real clock (on PostgreSQL they are the server's), short ones.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Option, Schedule, Scope } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import { TestClock } from "effect/testing"
import { Quit } from "../src/index.ts"
import * as JobQueue from "../src/JobQueue.ts"
import * as Worker from "../src/Worker.ts"
import { dialects, eventually, pg, postgres, storeIn, withStore } from "./support/jobs.ts"
import { captureLogs } from "./support/logs.ts"
import { rows } from "./support/quit.ts"

const setup = (sql: SqlClient) => sql`CREATE TABLE IF NOT EXISTS results (job_id BIGINT NOT NULL, value TEXT)`
const recordResult = (sql: SqlClient, job: JobQueue.Job, value: string) =>
  sql`INSERT INTO results (job_id, value) VALUES (${job.id}, ${value})`

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, Quit.layer())
/** For tests whose failing units log on purpose. */
const quietly = <A, E, R>(effect: Effect.Effect<A, E, R>) => withQuit(captureLogs().provide(effect))
const settle = Effect.repeat(Effect.yieldNow, { times: 20 })

const select = (queue: JobQueue.Service, text: string) =>
  Effect.map(queue.sql.unsafe<Record<string, unknown>>(text), (found) =>
    found.map((row) => Object.values(row).map((value) => typeof value === "bigint" || typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value)))
const resultsPerJob = (queue: JobQueue.Service) =>
  select(queue, "SELECT job_id, count(*) AS n FROM results GROUP BY job_id ORDER BY job_id")
const statsAre = (queue: JobQueue.Service, expected: JobQueue.Stats) =>
  eventually(Effect.map(queue.stats, (stats) => JSON.stringify(stats) === JSON.stringify(expected)))

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

for (const dialect of dialects) {
  const database = () => Effect.promise(dialect.database)

  describe(`JobQueue on ${dialect.name}`, () => {
    it.effect("a pool claims each job once, processes it, and marks it done with its result in one transaction", () =>
      Effect.gen(function*() {
        const { queue, scope } = yield* start(
          yield* database(),
          (job) => Effect.sleep("100 millis").pipe(Effect.as(job.payload.toUpperCase())),
          { workers: 3, commit: recordResult }
        )
        const ids = yield* queue.enqueue(["a", "b", "c", "d", "e", "f", "g"])
        assert.deepStrictEqual(ids, [1, 2, 3, 4, 5, 6, 7])
        yield* statsAre(queue, { pending: 4, claimed: 3, done: 0, failed: 0 })
        yield* TestClock.adjust("100 millis")
        yield* statsAre(queue, { pending: 1, claimed: 3, done: 3, failed: 0 })
        yield* TestClock.adjust("100 millis")
        yield* statsAre(queue, { pending: 0, claimed: 1, done: 6, failed: 0 })
        yield* TestClock.adjust("100 millis")
        yield* statsAre(queue, { pending: 0, claimed: 0, done: 7, failed: 0 })
        assert.deepStrictEqual(yield* select(queue, "SELECT job_id, value FROM results ORDER BY job_id"), [
          [1, "A"], [2, "B"], [3, "C"], [4, "D"], [5, "E"], [6, "F"], [7, "G"]
        ])
        yield* Scope.close(scope, Exit.void)
      }).pipe(withQuit))

    it.effect("a clean close finishes the jobs in progress and releases the claim it could not finish", () => {
      const { logs, provide } = captureLogs()
      return Effect.gen(function*() {
        const { queue, scope } = yield* start(
          yield* database(),
          (job) => Effect.sleep(job.payload === "slow" ? "1 minute" : "500 millis").pipe(Effect.as(job.payload)),
          { workers: 2, drainTimeout: "1 second", commit: recordResult }
        )
        yield* queue.enqueue(["fast", "slow", "fast", "fast"])
        yield* statsAre(queue, { pending: 2, claimed: 2, done: 0, failed: 0 })
        yield* TestClock.adjust("200 millis")
        yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
        const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
        yield* TestClock.adjust("300 millis")
        yield* eventually(Effect.map(resultsPerJob(queue), (found) => found.length === 1))
        assert.deepStrictEqual(yield* resultsPerJob(queue), [[1, 1]], "the job in progress finished while draining")
        yield* TestClock.adjust("700 millis")
        yield* Fiber.join(closing)
        // The queue is closed: read through a store of its own.
        assert.isTrue(logs.some((log) => log.text === "jobs db: released 1 claimed jobs to pending"), JSON.stringify(logs))
        const byName = Object.fromEntries((yield* rows).map((row) => [row.name, row]))
        assert.deepInclude(byName["jobs"], { outcome: "cut", detail: "1 cut at the drain timeout" })
        assert.strictEqual(byName["jobs db"]!.outcome, "done")
      }).pipe(provide, withQuit)
    })

    it.effect("an enqueue in this process wakes idle workers at once; one from another process, at once on PostgreSQL (NOTIFY), after the poll interval on SQLite", () =>
      Effect.gen(function*() {
        const path = yield* database()
        const { queue, scope } = yield* start(path, () => Effect.succeed("ok"), { workers: 2, commit: recordResult }, {
          pollInterval: "1 hour"
        })
        yield* settle
        yield* queue.enqueue(["now"])
        yield* statsAre(queue, { pending: 0, claimed: 0, done: 1, failed: 0 })
        // Another process (another machine) enqueues.
        yield* Effect.promise(() => withStore(path, (jobs) => jobs.enqueue(["later"])))
        if (dialect.name === "PostgreSQL") {
          yield* statsAre(queue, { pending: 0, claimed: 0, done: 2, failed: 0 })
        } else {
          yield* settle
          assert.strictEqual((yield* queue.stats).pending, 1, "no clock moved: SQLite hears only its own process")
          yield* TestClock.adjust("1 hour")
          yield* statsAre(queue, { pending: 0, claimed: 0, done: 2, failed: 0 })
        }
        yield* Scope.close(scope, Exit.void)
      }).pipe(withQuit))

    it.effect("by default a failing job is retried after 1, 2 and 4 s, then marked failed with its error", () =>
      Effect.gen(function*() {
        let runs = 0
        const { queue, scope } = yield* start(yield* database(), () => Effect.suspend(() => (runs++, Effect.fail("printer on fire"))), {})
        yield* queue.enqueue(["print"])
        yield* eventually(Effect.sync(() => runs === 1))
        for (const [step, expected] of [[1000, 2], [2000, 3], [3999, 3]] as const) {
          yield* TestClock.adjust(step)
          yield* eventually(Effect.sync(() => runs === expected))
        }
        assert.strictEqual((yield* queue.stats).claimed, 1)
        yield* TestClock.adjust("1 millis")
        yield* statsAre(queue, { pending: 0, claimed: 0, done: 0, failed: 1 })
        assert.strictEqual(runs, 4)
        assert.deepStrictEqual(yield* select(queue, "SELECT state, attempts, error FROM jobs"), [["failed", 1, "printer on fire"]])
        yield* Scope.close(scope, Exit.void)
      }).pipe(quietly))

    it.effect("a commit that fails rolls the done mark back: no result, and the job is not done", () =>
      Effect.gen(function*() {
        const { queue, scope } = yield* start(yield* database(), () => Effect.succeed("value"), {
          onFailure: Worker.logAndContinue,
          commit: (sql, job, value) => Effect.andThen(recordResult(sql, job, value), Effect.fail("the results service refused"))
        })
        yield* queue.enqueue(["x"])
        yield* statsAre(queue, { pending: 0, claimed: 0, done: 0, failed: 1 })
        assert.deepStrictEqual(yield* resultsPerJob(queue), [])
        assert.deepStrictEqual(yield* select(queue, "SELECT state, error FROM jobs"), [["failed", "the results service refused"]])
        yield* Scope.close(scope, Exit.void)
      }).pipe(quietly))

    it.effect("completions written together: one commit failing rolls back its own job only", () =>
      Effect.gen(function*() {
        const { queue, scope } = yield* start(yield* database(), (job) => Effect.succeed(job.payload), {
          workers: 4,
          onFailure: Worker.logAndContinue,
          commit: (sql, job, value) =>
            Effect.andThen(recordResult(sql, job, value), value === "bad" ? Effect.fail("refused") : Effect.void)
        })
        yield* queue.enqueue(["a", "b", "bad", "c", "d", "e", "f", "g"])
        yield* statsAre(queue, { pending: 0, claimed: 0, done: 7, failed: 1 })
        assert.deepStrictEqual(
          yield* select(queue, "SELECT value FROM results ORDER BY job_id"),
          [["a"], ["b"], ["c"], ["d"], ["e"], ["f"], ["g"]]
        )
        yield* Scope.close(scope, Exit.void)
      }).pipe(quietly))

    it.effect("a retry backoff is cut by closing; the job goes back to pending", () =>
      Effect.gen(function*() {
        const path = yield* database()
        const { queue, scope } = yield* start(path, () => Effect.fail("flaky"), { onFailure: Worker.retry(Schedule.spaced("1 hour")) })
        yield* queue.enqueue(["x"])
        yield* eventually(Effect.map(queue.stats, (stats) => stats.claimed === 1))
        yield* settle
        yield* Scope.close(scope, Exit.void)
        const [state] = yield* Effect.promise(() => withStore(path, (jobs) => jobs.stats))
          .pipe(Effect.map((stats) => [stats]))
        assert.deepStrictEqual(state, { pending: 1, claimed: 0, done: 0, failed: 0 })
      }).pipe(quietly))
  })

  describe(`JobQueue on ${dialect.name}: two processes (or machines) on one database`, () => {
    it.live("two pools of 4 workers share 300 jobs: each is done once, by one of them, and both take part", () =>
      Effect.gen(function*() {
        const path = yield* database()
        const by = new Map<number, string>()
        const pools = yield* Effect.forEach(["a", "b"], (name) =>
          Effect.map(
            // 20 ms a job: alone, a pool needs 1.5 s for all; the other finds them within its 100 ms poll.
            Layer.build(JobQueue.layerWorker(name, (job) =>
              Effect.as(Effect.sleep("20 millis"), undefined).pipe(
                Effect.tap(() => Effect.sync(() => by.set(job.id, by.has(job.id) ? "twice" : name)))
              ), { workers: 4, commit: (sql, job) => recordResult(sql, job, name) })
              .pipe(Layer.provideMerge(JobQueue.layer({ path, setup, pollInterval: "100 millis" })))),
            (context) => Context.get(context, JobQueue.JobQueue)
          ))
        yield* pools[0]!.enqueue(Array.from({ length: 300 }, (_, n) => `job ${n}`))
        yield* statsAre(pools[1]!, { pending: 0, claimed: 0, done: 300, failed: 0 })
        const counts = yield* select(pools[0]!, "SELECT count(*) AS n, count(DISTINCT job_id) AS jobs FROM results")
        assert.deepStrictEqual(counts, [[300, 300]])
        const names = new Set(by.values())
        assert.isFalse(names.has("twice"))
        assert.deepStrictEqual([...names].sort(), ["a", "b"])
      }).pipe(Effect.scoped, withQuit))
  })

  describe(`JobQueue claims on ${dialect.name}: fenced, leased, released`, () => {
    it.live("a claim whose lease has passed is claimable again; the first claimant's completion, failure and renewal are refused", () =>
      Effect.gen(function*() {
        const path = yield* database()
        const lease = 300
        // a stops renewing (it hangs); b is a live queue.
        const [a, b] = [yield* storeIn(path, lease, setup), yield* queueOn(path, lease)]
        yield* a.enqueue(["x"])
        const [first] = yield* a.claim(1)
        assert.isDefined(first)
        if (first === undefined) return
        assert.isTrue(Option.isNone(yield* b.claim), "the lease still holds")
        yield* Effect.sleep(lease + 100)
        const second = Option.getOrThrow(yield* b.claim)
        assert.deepStrictEqual([second.id, second.attempts], [first.id, 2])
        assert.notStrictEqual(second.claim, first.claim)
        assert.isFalse(yield* a.renew(first), "a stale renewal is refused")
        assert.isFalse(yield* a.complete(first, (sql) => recordResult(sql, first, "a")), "a lost its claim")
        assert.isFalse(yield* a.fail(first, "too late"))
        assert.isTrue(yield* b.renew(second))
        assert.isTrue(yield* b.complete(second, (sql) => recordResult(sql, second, "b")))
        assert.isTrue(yield* b.complete(second), "completing twice with its own claim is still done (a retried COMMIT)")
        assert.deepStrictEqual(yield* b.stats, { pending: 0, claimed: 0, done: 1, failed: 0 })
        assert.deepStrictEqual(yield* select(b, "SELECT job_id, value FROM results"), [[1, "b"]])
      }).pipe(Effect.scoped, withQuit))

    it.live("a batch claim takes the oldest first, each job once; release gives back only claims not started, their attempt uncounted", () =>
      Effect.gen(function*() {
        const path = yield* database()
        const [a, b] = [yield* queueOn(path, 30_000), yield* queueOn(path, 30_000)]
        yield* a.enqueue(["1", "2", "3", "4", "5"])
        const mine = yield* a.claimBatch(3)
        const theirs = yield* b.claimBatch(3)
        assert.deepStrictEqual(mine.map((job) => job.payload), ["1", "2", "3"])
        assert.deepStrictEqual(theirs.map((job) => job.payload), ["4", "5"])
        assert.strictEqual(yield* b.release(mine), 0, "b cannot release a's claims")
        assert.strictEqual(yield* a.release(mine.slice(1)), 2)
        assert.deepStrictEqual(yield* select(a, "SELECT id, state, attempts FROM jobs ORDER BY id"), [
          [1, "claimed", 1], [2, "pending", 0], [3, "pending", 0], [4, "claimed", 1], [5, "claimed", 1]
        ])
      }).pipe(Effect.scoped, withQuit))
  })
}

describe("JobQueue on PostgreSQL: LISTEN/NOTIFY", () => {
  it.live("claims given back by another machine wake the idle workers at once", () =>
    Effect.gen(function*() {
      const path = yield* Effect.promise(pg.database)
      const other = yield* storeIn(path, 30_000, setup)
      yield* other.enqueue(["x", "y"])
      const held = yield* other.claim(2)
      assert.strictEqual(held.length, 2)
      // The pool's first claim finds nothing: the other machine holds both; its next poll is an hour away.
      const { queue, scope } = yield* start(path, () => Effect.succeed("ok"), { workers: 2, commit: recordResult }, {
        pollInterval: "1 hour"
      })
      // Time for that first, empty claim (if it came later it would find the jobs without a notification).
      yield* Effect.sleep("300 millis")
      yield* statsAre(queue, { pending: 0, claimed: 2, done: 0, failed: 0 })
      assert.strictEqual(yield* other.releaseUnstarted(held), 2)
      yield* statsAre(queue, { pending: 0, claimed: 0, done: 2, failed: 0 })
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.scoped, withQuit))

  it.live("the listening session ended by the server: the queue listens again, and an enqueue elsewhere wakes it at once", () =>
    Effect.gen(function*() {
      const path = yield* Effect.promise(pg.database)
      const server = yield* Effect.promise(postgres)
      const database = path.slice(path.lastIndexOf("/") + 1)
      const { queue, scope } = yield* start(path, () => Effect.succeed("ok"), { workers: 2, commit: recordResult }, {
        pollInterval: "1 hour"
      })
      // The backends of this database whose last statement was a LISTEN.
      const listeners = () =>
        server.psql(`SELECT pid FROM pg_stat_activity WHERE datname = '${database}' AND query LIKE 'LISTEN%'`).trim()
      yield* eventually(Effect.sync(() => listeners() !== ""))
      const first = listeners()
      server.psql(`SELECT pg_terminate_backend(${first})`)
      yield* eventually(Effect.sync(() => listeners() !== "" && listeners() !== first))
      yield* Effect.promise(() => withStore(path, (jobs) => jobs.enqueue(["after"])))
      yield* statsAre(queue, { pending: 0, claimed: 0, done: 1, failed: 0 })
      yield* Scope.close(scope, Exit.void)
    }).pipe(quietly))
})

/** A queue of its own (another process, another machine) in the current scope. */
const queueOn = (path: string, leaseMillis: number) =>
  Effect.map(
    Layer.build(JobQueue.layer({ path, setup, lease: leaseMillis })),
    (context) => Context.get(context, JobQueue.JobQueue)
  )
