/**
 * One contender of bench:jobs, in a process of its own: enqueues N trivial
 * jobs in chunks of 500 (timed), then runs one worker of concurrency 10 until
 * the database says all N are completed (timed), and prints one JSON line:
 * { enqueueMs, processMs }.
 *
 *   node bench/jobs/contender.ts <contender> <database> <N>
 *
 * Contenders: `jobqueue` (this library's JobQueue, on PostgreSQL or SQLite),
 * `jobqueue-main` (the JobQueue of the baseline's source, extracted by run.ts
 * into bench/.tmp/jobs-main; SQLite), `graphile-worker` and `pg-boss` (installed
 * by run.ts into bench/.tmp/jobs-contenders, not project dependencies).
 */
import { Context, Effect, Layer } from "effect"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

const [contender, database, count] = process.argv.slice(2) as [string, string, string]
const N = Number(count)
const CHUNK = 500
const CONCURRENCY = 10
const payloads = (from: number) => Array.from({ length: Math.min(CHUNK, N - from) }, (_, i) => `job ${from + i}`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `completed` every 5 ms until it reaches N; the time since `started`. */
const until = async (completed: () => Promise<number>, started: number) => {
  while ((await completed()) < N) await sleep(5)
  return performance.now() - started
}

const contenders = fileURLToPath(new URL("../.tmp/jobs-contenders/", import.meta.url))
const fromContenders = createRequire(contenders)

// The little of each contender's API used here (they are not project dependencies, so no types).
interface Rows<A> {
  readonly rows: ReadonlyArray<A>
}
interface GraphileWorker {
  readonly makeWorkerUtils: (options: { readonly connectionString: string }) => Promise<{
    readonly migrate: () => Promise<void>
    readonly addJobs: (specs: ReadonlyArray<{ readonly identifier: string; readonly payload: unknown }>) => Promise<unknown>
    readonly withPgClient: <A>(f: (client: { query: (sql: string) => Promise<Rows<A>> }) => Promise<Rows<A>>) => Promise<Rows<A>>
    readonly release: () => Promise<void>
  }>
  readonly run: (options: Record<string, unknown>) => Promise<{ readonly stop: () => Promise<void> }>
  readonly Logger: new(factory: () => () => void) => unknown
}
interface PgBossModule {
  readonly PgBoss: new(options: { readonly connectionString: string }) => {
    readonly on: (event: "error", listener: () => void) => void
    readonly start: () => Promise<unknown>
    readonly createQueue: (name: string) => Promise<void>
    readonly insert: (name: string, jobs: ReadonlyArray<{ readonly data: unknown }>) => Promise<unknown>
    readonly work: (name: string, options: Record<string, unknown>, handler: () => Promise<void>) => Promise<string>
    readonly getDb: () => { readonly executeSql: (sql: string) => Promise<Rows<{ n: number }>> }
    readonly stop: (options: Record<string, unknown>) => Promise<void>
  }
}

interface Result {
  readonly enqueueMs: number
  readonly processMs: number
}

const graphileWorker = async (): Promise<Result> => {
  const graphile = fromContenders("graphile-worker") as GraphileWorker
  const utils = await graphile.makeWorkerUtils({ connectionString: database })
  await utils.migrate()
  const t0 = performance.now()
  for (let from = 0; from < N; from += CHUNK) {
    await utils.addJobs(payloads(from).map((payload) => ({ identifier: "bench", payload: { payload } })))
  }
  const enqueueMs = performance.now() - t0
  const started = performance.now()
  const runner = await graphile.run({
    connectionString: database,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    pollInterval: 1_000,
    taskList: { bench: async () => {} },
    logger: new graphile.Logger(() => () => {})
  })
  // Completed jobs are deleted: done when none is left.
  const left = () =>
    utils.withPgClient<{ n: number }>((client) => client.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs"))
      .then((result) => N - result.rows[0]!.n)
  const processMs = await until(left, started)
  await runner.stop()
  await utils.release()
  return { enqueueMs, processMs }
}

const pgBoss = async (): Promise<Result> => {
  const { PgBoss } = fromContenders("pg-boss") as PgBossModule
  const boss = new PgBoss({ connectionString: database })
  boss.on("error", () => {})
  await boss.start()
  await boss.createQueue("bench")
  const t0 = performance.now()
  for (let from = 0; from < N; from += CHUNK) await boss.insert("bench", payloads(from).map((payload) => ({ data: { payload } })))
  const enqueueMs = performance.now() - t0
  const started = performance.now()
  // Its fastest setting for this load (issue 26): batches of 10, fetching again at once while batches come back full.
  await boss.work("bench", { batchSize: CONCURRENCY, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 }, async () => {})
  const db = boss.getDb()
  const completed = () =>
    db.executeSql("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'bench' AND state = 'completed'")
      .then((result) => result.rows[0]!.n)
  const processMs = await until(completed, started)
  await boss.stop({ graceful: true, wait: true })
  return { enqueueMs, processMs }
}

/** This library's JobQueue, or the baseline's (same API shape) from `source`. */
const jobQueue = async (source: string): Promise<Result> => {
  const { JobQueue, Quit } = await import(source) as typeof import("../../src/index.ts")
  const program = Effect.gen(function*() {
    const queue = Context.get(yield* Layer.build(JobQueue.layer({ path: database })), JobQueue.JobQueue)
    const t0 = performance.now()
    for (let from = 0; from < N; from += CHUNK) yield* queue.enqueue(payloads(from))
    const enqueueMs = performance.now() - t0
    const started = performance.now()
    yield* Layer.build(JobQueue.layerWorker("bench", () => Effect.void, { workers: CONCURRENCY }).pipe(
      Layer.provide(Layer.succeed(JobQueue.JobQueue, queue))
    ))
    const processMs = yield* Effect.promise(() => until(() => Effect.runPromise(Effect.map(queue.stats, (s) => s.done)), started))
    return { enqueueMs, processMs }
  })
  return Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Quit.layer())))
}

/** Only enqueues (the release measure's job). */
const enqueueOnly = async (): Promise<Result> => {
  const { JobQueue, Quit } = await import("../../src/index.ts")
  await Effect.runPromise(Effect.gen(function*() {
    const queue = Context.get(yield* Layer.build(JobQueue.layer({ path: database })), JobQueue.JobQueue)
    yield* queue.enqueue(payloads(0))
  }).pipe(Effect.scoped, Effect.provide(Quit.layer())))
  return { enqueueMs: 0, processMs: 0 }
}

const run: Record<string, () => Promise<Result>> = {
  enqueue: enqueueOnly,
  "graphile-worker": graphileWorker,
  "pg-boss": pgBoss,
  jobqueue: () => jobQueue("../../src/index.ts"),
  "jobqueue-main": () => jobQueue("../.tmp/jobs-main/src/index.ts")
}

const result = await run[contender]!()
console.log(JSON.stringify(result))
process.exit(0)
