/**
 * The job queue killed at random moments: one SQLite file, 1,000 jobs (200 in
 * `npm test`), and the example service started again and again on it, each
 * time killed at a random moment — during startup or while its workers run —
 * by SIGTERM or by SIGKILL, in turn: 50 kills (10 in `npm test`). Claims left
 * by a SIGKILL expire after a 1 s lease and are taken by the next process.
 *
 * The promise: after every kill, every job is pending, claimed or done, and a
 * done job has exactly one result (the example writes it in the transaction
 * that marks the job done); a SIGTERM exits 0 before its shutdown deadline
 * (the report's ending is `graceful`) with nothing cut. In the end, a last
 * process finishes the rest: all jobs done, 0 lost, 0 done twice. The time
 * from each SIGTERM to the exit is recorded, not asserted.
 */
import { assert, describe, it } from "@effect/vitest"
import { DatabaseSync } from "node:sqlite"
import { setTimeout as sleep } from "node:timers/promises"
import { readJobs } from "../../examples/demo.ts"
import { lab } from "./support/lab.ts"
import { size } from "./support/mode.ts"
import { shutdownReport } from "./support/report.ts"
import { record, spread } from "./support/results.ts"

const { service, tempDir } = lab()
const JOBS = size(200, 1_000)
const KILLS = size(10, 50)
const SHUTDOWN_TIMEOUT_MS = 2_000
const LIMIT_MS = SHUTDOWN_TIMEOUT_MS + 100
const env = { JOBS_LEASE: "1s", WORKERS: "4", JOB_MS: "40", DRAIN_TIMEOUT: "1s", SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms` }

interface Kill {
  readonly signal: "SIGTERM" | "SIGKILL"
  /** Killed before the service said it listens. */
  readonly duringStartup: boolean
  /** A SIGTERM so early that Node was still loading the program: its default action ended the process. */
  readonly beforeRunMain: boolean
  /** Jobs being processed when it was killed. */
  readonly inProgress: number
  readonly doneByThisProcess: number
  readonly code: number | null
  readonly elapsedMs: number
}

const count = (path: string, where: string, ...values: Array<number>) => {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    return (db.prepare(`SELECT COUNT(*) AS n FROM jobs WHERE ${where}`).get(...values) as { n: number }).n
  } finally {
    db.close()
  }
}

/** Jobs claimed more than once: taken again after a kill. */
const reclaimed = (path: string) => count(path, "attempts > 1")

/** Jobs still claimed by a process started at `since` (epoch ms): those it was processing when killed. */
const claimedSince = (path: string, since: number) => count(path, "state = 'claimed' AND claimed_at >= ?", since)

const assertNothingLost = (path: string) => {
  const jobs = readJobs(path, JOBS)
  assert.deepInclude(jobs, { lost: 0, doneTwice: 0, failed: 0 }, JSON.stringify(jobs))
  assert.strictEqual(jobs.done + jobs.pending + jobs.claimed, JOBS)
  return jobs
}

/** One process on the queue, killed by `signal` at a random moment. */
const killOnce = async (path: string, signal: Kill["signal"], first: boolean): Promise<Kill> => {
  const doneBefore = first ? 0 : readJobs(path, JOBS).done
  const startedAt = Date.now()
  const child = service({ ...env, JOBS_DB: path })
  // One kill in five lands during startup (never the first: it enqueues the jobs).
  const duringStartup = !first && Math.random() < 0.2
  if (duringStartup) await sleep(50 + Math.random() * 1_000)
  else {
    const ports = await child.listening()
    if (first) await fetch(`http://127.0.0.1:${ports.api}/jobs?n=${JOBS}`, { method: "POST" })
    await sleep(Math.random() * 400)
  }
  const stopped = await child.stop(signal)
  const after = assertNothingLost(path)
  let inProgress = claimedSince(path, startedAt)
  const output = child.output()
  // Until Main.runMain has installed its handlers (Node loads the modules first, ~0.7 s here),
  // SIGTERM has Node's default action; nothing has been acquired by then, so nothing was written.
  const beforeRunMain = signal === "SIGTERM" && duringStartup && stopped.code === null && output === ""
  if (signal === "SIGTERM" && !beforeRunMain) {
    assert.strictEqual(stopped.code, 0, output)
    // Killed before its layers were built, it may have no report rows yet; those it has are done.
    const report = shutdownReport(output)
    // Not `deadline`: it ended before its shutdown deadline.
    assert.deepStrictEqual([report.ending, report.exitCode], ["graceful", 0], output)
    for (const row of report.rows) assert.strictEqual(row.outcome, "done", output)
    inProgress = report.rows.find((row) => row.name === "jobs")?.inFlightAtDrain ?? 0
  } else assert.strictEqual(stopped.code, null, "killed by the signal")
  return {
    signal,
    duringStartup,
    beforeRunMain,
    inProgress,
    doneByThisProcess: after.done - doneBefore,
    code: stopped.code,
    elapsedMs: stopped.elapsedMs
  }
}

describe("the job queue killed at random moments", () => {
  it(`${KILLS} kills (SIGTERM and SIGKILL in turn) over ${JOBS} jobs, with restarts: 0 lost, 0 done twice`, async () => {
    const path = `${tempDir()}/jobs.db`
    const kills: Array<Kill> = []
    for (let i = 0; i < KILLS; i++) kills.push(await killOnce(path, i % 2 === 0 ? "SIGTERM" : "SIGKILL", i === 0))

    // A last process finishes what is left, claims of the last SIGKILL included once their lease passed.
    const last = service({ ...env, JOBS_DB: path })
    await last.listening()
    const deadline = performance.now() + 30_000
    while (readJobs(path, JOBS).done < JOBS && performance.now() < deadline) await sleep(50)
    const stopped = await last.stop()
    assert.strictEqual(stopped.code, 0, last.output())
    const final = assertNothingLost(path)
    assert.strictEqual(final.done, JOBS, "every job done in the end")

    const midWork = kills.filter((kill) => kill.inProgress > 0)
    assert.isAtLeast(midWork.length, KILLS / 2, `most kills landed while jobs ran: ${JSON.stringify(kills)}`)
    assert.isAtLeast(kills.filter((kill) => kill.signal === "SIGKILL" && kill.inProgress > 0).length, 1)
    const bySignal = (signal: Kill["signal"]) => kills.filter((kill) => kill.signal === signal)
    record({
      family: "Job queue killed at random moments",
      scenario: `${KILLS} kills over ${JOBS} jobs (SIGTERM and SIGKILL in turn, 1 s lease), then a last run`,
      trials: KILLS,
      requests: JOBS,
      failures: final.lost + final.doneTwice,
      signalToExitMs: bySignal("SIGTERM").filter((kill) => !kill.beforeRunMain).map((kill) => kill.elapsedMs),
      limitMs: LIMIT_MS,
      exitCodes: kills.map((kill) => kill.code),
      notes: [
        `${bySignal("SIGTERM").length} SIGTERM (exit 0; times above are theirs), ${bySignal("SIGKILL").length} SIGKILL (no exit code)`,
        `${kills.filter((kill) => kill.duringStartup).length} kills during startup (${
          kills.filter((kill) => kill.beforeRunMain).length
        } SIGTERM before Main.runMain ran: Node's default action, nothing acquired yet); ${midWork.length} while jobs ran ` +
        `(jobs in progress at the kill: ${spread(midWork.map((kill) => kill.inProgress))}, min / median / max)`,
        `jobs done per killed process: ${spread(kills.map((kill) => kill.doneByThisProcess))}; ` +
        `${JOBS - kills.reduce((n, kill) => n + kill.doneByThisProcess, 0)} left for the last run`,
        `${reclaimed(path)} jobs claimed again after a kill (released by SIGTERM, or lease expired after SIGKILL)`,
        `in the end: ${final.done} done, ${final.lost} lost, ${final.doneTwice} done twice`
      ]
    })
  }, 600_000)
})
