/**
 * One job queue, three instances of the example service on it, one of them
 * killed every 0.5 s — SIGTERM and SIGKILL in turn — and started again as soon
 * as it has exited, while jobs keep coming:
 *
 * - on PostgreSQL, each instance on a machine of its own (a network
 *   namespace joined to the host by a veth pair; the server on the host);
 * - on SQLite, three processes on one machine, one file.
 *
 * Any instance whose signal handling is installed can be killed: while it
 * starts (its layers being built — the database connected, the queue's tables
 * made, the servers bound) as well as once it listens. A SIGTERM during the
 * start is a case the library supports like any other (`Main.runMain`: what
 * was acquired is released, exit 0 with the report); before `Main.runMain`
 * installs its listeners, while Node still loads the program, a SIGTERM gets
 * Node's default action, so the instances are preloaded with
 * fixtures/signalsInstalled.ts, which says when that moment has come. The
 * instances run the service bundled, with Node's compile cache, so that they
 * start fast enough for the cadence (see `program` below).
 *
 * The promise: 0 jobs lost, 0 committed twice (each done job has exactly one
 * row in `results`, written in the transaction that marks it done); every
 * SIGTERM exits 0 with its report. A SIGKILLed instance's claims come back
 * after its lease (2 s here). At the end the survivors finish every job.
 * The cadence is measured, not asserted (kills per second, the gaps between
 * kills), and so is where the kills landed (starting or working): both are in
 * the figures.
 *
 * Root only (network namespaces). `npm test` runs a reduced version (6 s of
 * kills, a few hundred jobs); `npm run test:reliability` the full one (20 s,
 * thousands of jobs), recorded in results.md.
 */
import { afterAll, afterEach, assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { cpSync, mkdtempSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { build } from "rolldown"
import type { SqlClient } from "effect/sql/SqlClient"
import { type Postgres, startPostgres } from "../support/postgres.ts"
import { withStore } from "../support/jobs.ts"
import { makeMachines } from "./support/machines.ts"
import { size } from "./support/mode.ts"
import { shutdownReport } from "./support/report.ts"
import { record, spread } from "./support/results.ts"

const main = fileURLToPath(new URL("../../examples/main.ts", import.meta.url))
const cleanups: Array<() => unknown> = []
const defer = (cleanup: () => unknown) => cleanups.push(cleanup)
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const SECONDS = size(6, 20)
/** The target: one kill every this many milliseconds, of any instance that can take it. */
const PERIOD = 500
/** At least this many kills (half of them SIGTERM), however long the instances take to start. */
const MIN_KILLS = size(4, 20)
const FIRST_JOBS = size(150, 1_000)
/** Enqueued every PERIOD while the kills go on. */
const JOBS_PER_TICK = size(15, 40)
const env = { JOBS_LEASE: "2s", WORKERS: "4", JOB_MS: "30", DRAIN_TIMEOUT: "2s", SHUTDOWN_TIMEOUT: "4s", LOG_FORMAT: "json" }
const results = (sql: SqlClient) =>
  sql`CREATE TABLE IF NOT EXISTS results (job BIGINT NOT NULL, pid INTEGER NOT NULL, done_at BIGINT NOT NULL)`

/**
 * Written by the preload fixtures/signalsInstalled.ts as `Main.runMain`
 * installs its signal handling: from then on a SIGTERM, during the start as
 * well, drains the instance and exits 0 with its report.
 */
const INSTALLED = "chaos: SIGTERM listener installed"
const LISTENING = "example service listening"
const preload = fileURLToPath(new URL("./fixtures/signalsInstalled.ts", import.meta.url))

/**
 * What the instances run: the example service bundled (the default), or
 * examples/main.ts from its sources (CHAOS_SERVICE=source).
 *
 * Start-up bounds the cadence: three instances, one killed every 0.5 s, each
 * lives ~1.5 s, its start included. From its sources, the service spends
 * ~1.6 s of CPU before `Main.runMain` (Node's ESM loader resolving, stripping
 * and compiling ~700 modules: effect, gRPC, Express, the library), ~1 s with
 * Node's compile cache: every kill then lands in a start, and on this 2-core
 * machine shared with the database, the test and other work, starts of 5 to
 * 10 s were measured. Bundled (rolldown; grpc-health-check left out, as it
 * reads its .proto files next to its own code), the same sources take
 * ~0.45 s. The bundle goes under node_modules/.cache, where the left-out
 * package resolves, with examples/proto beside it as the service expects.
 */
const fromSources = process.env["CHAOS_SERVICE"] === "source"
let program = main

/**
 * Node's compile cache for the instances (NODE_COMPILE_CACHE), shared by both
 * tests: an instance started again finds its code compiled already (and,
 * from the sources, its types stripped) — what a service restarted by its
 * orchestrator would want too.
 */
const compileCache = mkdtempSync(join(tmpdir(), "effect-graceful-compile-cache-"))
const bundle = join(fileURLToPath(new URL("../..", import.meta.url)), "node_modules", ".cache", `effect-graceful-chaos-${process.pid}`)
afterAll(() => {
  rmSync(compileCache, { recursive: true, force: true })
  rmSync(bundle, { recursive: true, force: true })
})
beforeAll(async () => {
  if (!fromSources) {
    const dir = bundle
    await build({
      input: main,
      platform: "node",
      logLevel: "warn",
      external: [/^grpc-health-check(\/|$)/],
      output: { dir: join(dir, "examples"), format: "esm", entryFileNames: "main.mjs" }
    })
    cpSync(fileURLToPath(new URL("../../examples/proto", import.meta.url)), join(dir, "proto"), { recursive: true })
    program = join(dir, "examples", "main.mjs")
  }
  // The cache filled before the chaos by one start that stops at its
  // configuration (an invalid PORT: exit 1 once every module is loaded, the
  // cache written as it exits), as a deployment would warm it; the drivers
  // loaded while the layers are built join it as the first instances exit.
  const child = spawn(process.execPath, [program], {
    env: { ...process.env, NODE_COMPILE_CACHE: compileCache, PORT: "not a port" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => output += chunk.toString())
  child.stderr.on("data", (chunk: Buffer) => output += chunk.toString())
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve))
  assert.strictEqual(code, 1, output)
  assert.include(output, "invalid configuration: PORT", output)
}, 120_000)

/** One start of an instance: when it was spawned, installed its signal handling, listened (ms on the test's clock). */
interface Start {
  readonly spawnedAt: number
  installedAt: number | undefined
  listeningAt: number | undefined
}

/** One instance of the example service, started again and again. */
interface Instance {
  readonly index: number
  child: ChildProcess | undefined
  output: string
  start: Start
  busy: boolean
}

/**
 * Where a kill lands: `starting` once the instance's signal handling is in
 * place but before it listens (its layers are being built: the database
 * connected, the queue's tables made, the servers bound); `working` once it
 * listens and takes jobs.
 */
type Moment = "starting" | "working"

interface Kill {
  readonly signal: "SIGTERM" | "SIGKILL"
  readonly moment: Moment
  /** When it was sent, from the first instance able to take it. */
  readonly atMs: number
  readonly code: number | null
  readonly elapsedMs: number
  /** SIGTERM: the report's ending and exit code, and its rows that were not `done`. */
  readonly report?: {
    readonly ending: string
    readonly exitCode: number
    readonly notDone: ReadonlyArray<string>
    /**
     * Where the instance was when it handled the signal: `starting` if its
     * quit event came before it listened. A SIGTERM sent while it starts can
     * still be handled once it listens: the event loop turns only between
     * the steps of the build that wait (on SQLite, the whole build is one).
     */
    readonly handled: Moment
  }
}

/** What the database says: states, and the promise's two counts. */
interface Tally {
  readonly total: number
  readonly done: number
  readonly claimed: number
  /** Enqueued and missing, done without a result, or a result for a job not done. */
  readonly lost: number
  /** Done jobs with more than one result. */
  readonly committedTwice: number
  /** Jobs claimed more than once (released by a SIGTERM, or taken again after a SIGKILL's lease). */
  readonly reclaimed: number
}

const TALLY = `SELECT
  (SELECT count(*) FROM jobs),
  (SELECT count(*) FROM jobs WHERE state = 'done'),
  (SELECT count(*) FROM jobs WHERE state = 'claimed'),
  (SELECT count(*) FROM jobs WHERE state = 'done' AND id NOT IN (SELECT job FROM results))
    + (SELECT count(*) FROM results WHERE job NOT IN (SELECT id FROM jobs WHERE state = 'done')),
  (SELECT count(*) FROM (SELECT job FROM results GROUP BY job HAVING count(*) > 1) AS twice),
  (SELECT count(*) FROM jobs WHERE attempts > 1)`

const toTally = (values: ReadonlyArray<number>, enqueued: number): Tally => {
  const [total, done, claimed, missing, committedTwice, reclaimed] = values as [number, number, number, number, number, number]
  return { total, done, claimed, lost: enqueued - total + missing, committedTwice, reclaimed }
}

const pgTally = (pg: Postgres, database: string) => (enqueued: number) =>
  toTally(pg.psql(TALLY, database).trim().split("|").map(Number), enqueued)

const sqliteTally = (path: string) => (enqueued: number) => {
  const db = new DatabaseSync(path, { readOnly: true })
  try {
    return toTally(Object.values(db.prepare(TALLY).get() as Record<string, number>).map(Number), enqueued)
  } finally {
    db.close()
  }
}

/**
 * Runs the chaos on `database` with instances started by `launch(index)`.
 * Every PERIOD, from the moment the first instance can take a SIGTERM, one
 * instance is killed — SIGTERM and SIGKILL in turn — picked at random among
 * those that work (listen), or else among those whose signal handling is
 * installed, and that are not being killed already; when none is, the kill waits for the first that is, and the
 * schedule goes on from there (no burst to catch up). Each killed instance
 * is started again as soon as it has exited. Jobs are enqueued every PERIOD
 * meanwhile. After `SECONDS` (and at least MIN_KILLS kills) the survivors
 * finish the jobs and are stopped with SIGTERM. Returns what happened.
 */
const chaos = async (
  database: string,
  launch: (index: number) => ChildProcess,
  tally: (enqueued: number) => Tally
) => {
  const enqueue = (n: number) =>
    withStore(database, (jobs) => jobs.enqueue(Array.from({ length: n }, (_, i) => `job ${i}`)), results).then((ids) => ids.length)
  let enqueued = await enqueue(FIRST_JOBS)
  const loadBefore = loadavg()[0]!
  const kills: Array<Kill> = []
  const starts: Array<Start> = []
  // Wakes the schedule when an instance may have become able to take a kill.
  let wake = () => {}
  const changed = () => new Promise<void>((resolve) => wake = resolve)
  const instances: Array<Instance> = [0, 1, 2].map((index) => ({
    index,
    child: undefined,
    output: "",
    start: { spawnedAt: 0, installedAt: undefined, listeningAt: undefined },
    busy: false
  }))
  const startInstance = (instance: Instance) => {
    const start: Start = { spawnedAt: performance.now(), installedAt: undefined, listeningAt: undefined }
    starts.push(start)
    const child = launch(instance.index)
    instance.child = child
    instance.output = ""
    instance.start = start
    const onData = (chunk: Buffer) => {
      instance.output += chunk.toString()
      if (start.installedAt === undefined && instance.output.includes(INSTALLED)) {
        start.installedAt = performance.now()
        wake()
      }
      if (start.listeningAt === undefined && instance.output.includes(LISTENING)) start.listeningAt = performance.now()
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    defer(() => child.kill("SIGKILL"))
  }
  const exited = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => child.exitCode !== null || child.signalCode !== null
      ? resolve(child.exitCode)
      : child.once("close", (code) => resolve(code)))
  const killAndRestart = async (instance: Instance, signal: Kill["signal"], atMs: number) => {
    instance.busy = true
    const child = instance.child!
    const moment: Moment = instance.start.listeningAt === undefined ? "starting" : "working"
    const sentAt = performance.now()
    child.kill(signal)
    const code = await exited(child)
    const elapsedMs = performance.now() - sentAt
    if (signal === "SIGTERM") {
      const report = shutdownReport(instance.output)
      kills.push({
        signal,
        moment,
        atMs,
        code,
        elapsedMs,
        report: {
          ending: report.ending,
          exitCode: report.exitCode,
          notDone: report.rows.filter((row) => row.outcome !== "done").map((row) => `${row.name}: ${row.outcome}`),
          handled: handledWhile(instance.output)
        }
      })
    } else kills.push({ signal, moment, atMs, code, elapsedMs })
    startInstance(instance)
    instance.busy = false
  }
  const eligible = () => instances.filter((instance) => instance.start.installedAt !== undefined && !instance.busy)

  for (const instance of instances) startInstance(instance)
  while (eligible().length === 0) await changed()
  const started = performance.now()
  const elapsed = () => performance.now() - started

  let enqueuing = true
  const enqueuer = (async () => {
    while (enqueuing) {
      await sleep(PERIOD)
      enqueued += await enqueue(JOBS_PER_TICK)
    }
  })()

  const pending: Array<Promise<void>> = []
  let turn = 0
  let next = 0
  while (elapsed() < SECONDS * 1_000 || turn < MIN_KILLS) {
    if (next > elapsed()) await sleep(next - elapsed())
    let candidates = eligible()
    while (candidates.length === 0) {
      await changed()
      candidates = eligible()
    }
    // A working instance first (its jobs in flight are what a kill must not lose); one still
    // starting only when none works.
    const working = candidates.filter((instance) => instance.start.listeningAt !== undefined)
    const pool = working.length > 0 ? working : candidates
    const victim = pool[Math.floor(Math.random() * pool.length)]!
    const atMs = elapsed()
    pending.push(killAndRestart(victim, turn++ % 2 === 0 ? "SIGTERM" : "SIGKILL", atMs))
    next = Math.max(next + PERIOD, atMs)
  }
  const killPhaseMs = elapsed()
  const loadAfter = loadavg()[0]!
  await Promise.all(pending)
  enqueuing = false
  await enqueuer
  const doneDuringKills = tally(enqueued).done

  // The survivors finish what is left, SIGKILLed claims included once their lease has passed.
  const deadline = performance.now() + 180_000
  while (tally(enqueued).done < enqueued && performance.now() < deadline) await sleep(100)
  const finalStops = await Promise.all(instances.map(async (instance) => {
    while (instance.start.listeningAt === undefined) await sleep(20)
    const child = instance.child!
    child.kill("SIGTERM")
    return { code: await exited(child), report: shutdownReport(instance.output) }
  }))
  return { enqueued, kills, killPhaseMs, load: [loadBefore, loadAfter], doneDuringKills, starts, finalStops, final: tally(enqueued) }
}

type Run = Awaited<ReturnType<typeof chaos>>

const check = (run: Run) => {
  const { enqueued, final, finalStops, kills } = run
  assert.deepInclude(final, { total: enqueued, done: enqueued, claimed: 0, lost: 0, committedTwice: 0 }, JSON.stringify(final))
  const sigterms = kills.filter((kill) => kill.signal === "SIGTERM")
  for (const kill of sigterms) {
    assert.strictEqual(kill.code, 0, JSON.stringify(kill))
    assert.deepInclude(kill.report, { exitCode: 0, ending: "graceful" }, JSON.stringify(kill))
  }
  for (const stop of finalStops) assert.deepStrictEqual([stop.code, stop.report.exitCode], [0, 0])
  assert.isAtLeast(sigterms.length, 2, JSON.stringify(kills))
  assert.isAtLeast(kills.filter((kill) => kill.signal === "SIGKILL").length, 2, JSON.stringify(kills))
}

/** Whether the quit event of `output` came before the instance listened. */
const handledWhile = (output: string): Moment => {
  const quit = output.indexOf("quit event (SIGTERM)")
  const listening = output.indexOf(LISTENING)
  return listening === -1 || (quit !== -1 && quit < listening) ? "starting" : "working"
}

/** The gaps between consecutive kills, in ms. */
const intervals = (kills: ReadonlyArray<Kill>) => {
  const at = kills.map((kill) => kill.atMs).sort((a, b) => a - b)
  return at.slice(1).map((ms, i) => ms - at[i]!)
}

const landed = (kills: ReadonlyArray<Kill>, signal: Kill["signal"]) => {
  const of = kills.filter((kill) => kill.signal === signal)
  const sent = `sent ${of.filter((kill) => kill.moment === "starting").length} starting, ${of.filter((kill) => kill.moment === "working").length} working`
  if (signal === "SIGKILL") return sent
  const handled = of.filter((kill) => kill.report?.handled === "starting").length
  return `${sent} (handled: ${handled} starting, ${of.length - handled} working)`
}

/** The cadence as measured: kills per second over the kill phase, and the gaps between them. */
const cadence = (run: Run) => {
  const seconds = run.killPhaseMs / 1_000
  return {
    seconds,
    perSecond: run.kills.length / seconds,
    meanGapMs: run.killPhaseMs / run.kills.length,
    gaps: spread(intervals(run.kills))
  }
}

const figures = (name: string, run: Run) => {
  const sigterms = run.kills.filter((kill) => kill.signal === "SIGTERM")
  const measured = cadence(run)
  const since = (pick: (start: Start) => number | undefined) =>
    run.starts.flatMap((start) => {
      const at = pick(start)
      return at === undefined ? [] : [at - start.spawnedAt]
    })
  record({
    family: "Job queue chaos: three instances, one killed every ~0.5 s",
    scenario: name,
    trials: run.kills.length,
    requests: run.enqueued,
    failures: run.final.lost + run.final.committedTwice,
    signalToExitMs: sigterms.map((kill) => kill.elapsedMs),
    exitCodes: run.kills.map((kill) => kill.code),
    notes: [
      `cadence, measured: ${run.kills.length} kills in ${measured.seconds.toFixed(1)} s (from the first instance able to take one to the last kill): ${
        measured.perSecond.toFixed(2)
      } kills/s, one every ${Math.round(measured.meanGapMs)} ms on average (target ${PERIOD}); gaps between kills ${measured.gaps} ms`,
      `where they landed: SIGTERM ${landed(run.kills, "SIGTERM")}; SIGKILL ${landed(run.kills, "SIGKILL")} (starting: signal handling installed by Main.runMain, not yet listening; working: listening and taking jobs; a SIGTERM is handled while starting when its quit event comes before the instance listens). An instance can be killed from the moment its signal handling is installed`,
      `${sigterms.length} SIGTERM (exit 0 with the report, ending graceful: ${
        sigterms.filter((kill) => kill.code === 0 && kill.report?.ending === "graceful").length
      }; rows not done: ${sigterms.flatMap((kill) => kill.report?.notDone ?? []).join(", ") || "none"}), ${
        run.kills.length - sigterms.length
      } SIGKILL`,
      `${run.starts.length} starts (${fromSources ? "from the sources" : "bundled"}, NODE_COMPILE_CACHE on): spawn → signal handling installed ${spread(since((start) => start.installedAt))} ms, spawn → listening ${
        spread(since((start) => start.listeningAt))
      } ms`,
      `${run.enqueued} jobs enqueued while it ran, ${run.doneDuringKills} of them done by the end of the kills; in the end ${run.final.done} done, ${run.final.lost} lost, ${run.final.committedTwice} committed twice`,
      `${run.final.reclaimed} jobs claimed more than once (released at a SIGTERM, or taken again once a SIGKILLed claim's 2 s lease passed)`,
      `SIGTERM → exit during the kills: ${spread(sigterms.map((kill) => kill.elapsedMs))} ms (min / median / max; 3 instances, the server and the test on 2 cores)`,
      `the machine's load average (1 min) as the kills began and ended: ${run.load.map((load) => load.toFixed(1)).join(" and ")} (2 cores, shared with other work)`,
      `the 3 instances left at the end, stopped with SIGTERM once every job was done: exit codes ${run.finalStops.map((stop) => stop.code).join(", ")}`
    ]
  })
  // The same figures in the test's output, in the reduced suite as well.
  console.log(`${name}: ${JSON.stringify({ ...measured, sigterm: landed(run.kills, "SIGTERM"), sigkill: landed(run.kills, "SIGKILL") })}`)
  // CHAOS_DEBUG=1: every start (spawn → signal handling, spawn → listening; -1: never) and every kill.
  if (process.env["CHAOS_DEBUG"]) console.log(JSON.stringify({ starts: run.starts.map((s) => [s.installedAt === undefined ? -1 : s.installedAt - s.spawnedAt, s.listeningAt === undefined ? -1 : s.listeningAt - s.spawnedAt]), kills: run.kills.map(({ report, ...k }) => k) }, (_, v) => typeof v === "number" ? Math.round(v) : v))
}

const serviceEnv = (database: string, host: string) => ({
  ...process.env,
  ...env,
  NODE_COMPILE_CACHE: compileCache,
  JOBS_DB: database,
  HOST: host,
  PORT: "0",
  WEB_PORT: "0",
  GRPC_PORT: "0"
})

describe("the job queue under chaos", () => {
  it(`PostgreSQL, three machines (network namespaces), one instance killed every ~0.5 s for ${SECONDS} s: 0 lost, 0 committed twice`, async () => {
    const machines = makeMachines(3, defer)
    const pg = await startPostgres({
      listen: ["127.0.0.1", ...machines.map((machine) => machine.hostAddress)].join(","),
      hba: machines.map((machine) => `host all all ${machine.address}/32 trust`)
    })
    defer(() => pg.stop())
    pg.psql("CREATE DATABASE chaos")
    const run = await chaos(
      pg.url.replace(/\/postgres$/, "/chaos"),
      (index) => {
        const machine = machines[index]!
        const [command, ...args] = machine.exec
        return spawn(command!, [...args, process.execPath, "--import", preload, program], {
          env: serviceEnv(`postgres://postgres@${machine.hostAddress}:${pg.port}/chaos`, machine.address),
          stdio: ["ignore", "pipe", "pipe"]
        })
      },
      pgTally(pg, "chaos")
    )
    figures(`PostgreSQL 15, 3 machines (netns), ${SECONDS} s of kills`, run)
    check(run)
  }, 600_000)

  it(`SQLite, three processes on one file, one killed every ~0.5 s for ${SECONDS} s: 0 lost, 0 committed twice`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "effect-graceful-chaos-"))
    defer(() => rmSync(dir, { recursive: true, force: true }))
    const path = join(dir, "jobs.db")
    const run = await chaos(
      path,
      () => spawn(process.execPath, ["--import", preload, program], { env: serviceEnv(path, "127.0.0.1"), stdio: ["ignore", "pipe", "pipe"] }),
      sqliteTally(path)
    )
    figures(`SQLite, 3 processes on one file, ${SECONDS} s of kills`, run)
    check(run)
  }, 600_000)
})
