/**
 * The job queue's promise under real signals: a SIGTERM at a random moment
 * leaves every job done exactly once or pending; after a SIGKILL, the claimed
 * jobs are finished by the next process once their lease has passed. Each
 * child has its own SQLite file; the lanes run in parallel.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { once } from "node:events"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { setTimeout as sleep } from "node:timers/promises"
import { Effect } from "effect"
import { withStore } from "../support/jobs.ts"
import { createResults } from "./fixtures/results.ts"
import { type Child, fixture, start } from "./harness.ts"
import { tempDir } from "../support/temp.ts"

const service = fixture("jobs.ts")
const children: Array<Child> = []
const run = (env: Record<string, string>) => {
  const child = start(service, env)
  children.push(child)
  // "exit" can come before the last output is read; "close" comes after it.
  const closed = once(child.process, "close")
  return { ...child, exited: (timeoutMs?: number) => child.exited(timeoutMs).then((exit) => closed.then(() => exit)) }
}
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill("SIGKILL")
})

const JOBS_PER_RUN = 200
const LANES = 4
const RUNS_PER_LANE = 5
/** About how long a child takes to process 200 jobs of up to 5 ms with 4 workers. */
const PROCESSING_MS = 300

const newDatabase = async () => {
  const path = join(tempDir("jobs-e2e"), "jobs.db")
  await withStore(path, () => Effect.void, createResults)
  return path
}

const enqueue = (path: string, count: number) =>
  withStore(path, (jobs) => jobs.enqueue(Array.from({ length: count }, (_, n) => `job ${n}`)))

interface JobRow {
  readonly id: number
  readonly state: string
  readonly attempts: number
}

const readJobs = (path: string) => {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    const jobs = db.prepare("SELECT id, state, attempts FROM jobs ORDER BY id").all() as unknown as Array<JobRow>
    const results = db.prepare("SELECT job_id, count(*) AS n, max(pid) AS pid FROM results GROUP BY job_id").all() as unknown as Array<
      { job_id: number; n: number; pid: number }
    >
    return { jobs, results: new Map(results.map((r) => [r.job_id, r])) }
  } finally {
    db.close()
  }
}

/**
 * Every job ever enqueued is there; each is done with exactly one result, or
 * pending with none. Returns how many are done.
 */
const assertNothingLost = (path: string, enqueued: number) => {
  const { jobs, results } = readJobs(path)
  assert.strictEqual(jobs.length, enqueued, "no job lost")
  for (const job of jobs) {
    const n = results.get(job.id)?.n ?? 0
    if (job.state === "done") assert.strictEqual(n, 1, `job ${job.id} is done with ${n} results`)
    else assert.deepStrictEqual([job.state, n], ["pending", 0], `job ${job.id}`)
  }
  assert.strictEqual([...results.keys()].filter((id) => id > enqueued).length, 0)
  return jobs.filter((job) => job.state === "done").length
}

const jobsRow = (output: string) => /^\s*jobs\s+worker\s+(\S+)/m.exec(output)?.[1]

/** Runs of one SQLite file: each enqueues 200 jobs and is stopped by a SIGTERM at a random moment. */
const lane = async () => {
  const path = await newDatabase()
  const runs: Array<{ readonly done: number; readonly pending: number }> = []
  let enqueued = 0
  for (let i = 0; i < RUNS_PER_LANE; i++) {
    await enqueue(path, JOBS_PER_RUN)
    enqueued += JOBS_PER_RUN
    const before = assertNothingLost(path, enqueued)
    const child = run({ JOBS_DB: path })
    await child.waitFor(/READY/)
    await sleep(Math.random() * PROCESSING_MS)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.strictEqual(jobsRow(child.output()), "done", "the jobs in progress finished")
    const done = assertNothingLost(path, enqueued)
    runs.push({ done: done - before, pending: enqueued - done })
  }
  // A last run, not interrupted, finishes what the others left pending.
  const child = run({ JOBS_DB: path, EXIT_WHEN_DONE: "1" })
  // Up to 1,000 jobs, each committed with an fsync: on a loaded machine with a slow disk this takes a while.
  const { code } = await child.exited(60_000)
  assert.strictEqual(code, 0, child.output())
  assert.strictEqual(assertNothingLost(path, enqueued), enqueued, "every job done exactly once in the end")
  return runs
}

describe("the job queue under real signals", () => {
  it(`SIGTERM at random moments (${LANES * RUNS_PER_LANE} runs × ${JOBS_PER_RUN} jobs): every job done once or pending`, async () => {
    const runs = (await Promise.all(Array.from({ length: LANES }, lane))).flat()
    assert.strictEqual(runs.length, LANES * RUNS_PER_LANE)
    const interrupted = runs.filter((r) => r.done > 0 && r.pending > 0).length
    assert.isAtLeast(interrupted, 5, `the signal must land mid-work in many runs: ${JSON.stringify(runs)}`)
  }, 240_000)

  it("SIGKILL mid-work, then a restart: the claimed jobs are finished once their lease has passed", async () => {
    const path = await newDatabase()
    await enqueue(path, JOBS_PER_RUN)
    const env = { JOBS_DB: path, JOBS_LEASE: "1s", JOB_MS: "40" }
    const first = run(env)
    await first.waitFor(/READY/)
    while (readJobs(path).results.size < 20) await sleep(10)
    first.signal("SIGKILL")
    await first.exited()
    const killed = readJobs(path)
    const claimed = killed.jobs.filter((job) => job.state === "claimed")
    assert.isAtLeast(claimed.length, 1, "jobs were in progress when the process was killed")
    for (const job of claimed) assert.isFalse(killed.results.has(job.id), `claimed job ${job.id} has no result`)

    const second = run({ ...env, EXIT_WHEN_DONE: "1" })
    const { code } = await second.exited(20_000)
    assert.strictEqual(code, 0, second.output())
    assert.strictEqual(assertNothingLost(path, JOBS_PER_RUN), JOBS_PER_RUN)
    const after = readJobs(path)
    for (const job of claimed) {
      assert.strictEqual(after.jobs[job.id - 1]!.attempts, 2, `job ${job.id} was claimed again`)
      assert.strictEqual(after.results.get(job.id)!.pid, second.process.pid, `job ${job.id} was finished by the restart`)
    }
  }, 30_000)
})
