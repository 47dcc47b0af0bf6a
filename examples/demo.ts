/**
 * `npm run demo`: the whole mission in one command. Starts the example service
 * as a child process, drives HTTP and gRPC load at it, enqueues jobs, sends
 * SIGTERM in the middle, and prints what happened: requests sent / ok /
 * failed, how many were in flight at the signal and how many of those
 * finished, jobs done / pending / lost, the time from the signal to exit, and
 * the exit code.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { fileURLToPath } from "node:url"
import { type Sample, startLoad, workClient } from "./demo/load.ts"
import { listeningPorts, type Ports } from "./service/ports.ts"

export interface DemoOptions {
  readonly httpClients: number
  readonly grpcClients: number
  readonly jobs: number
  /** Load before the signal, in milliseconds. */
  readonly loadMillis: number
  readonly maxWorkMs: number
  /** The service's environment: DRAIN_DELAY, DRAIN_TIMEOUT, SHUTDOWN_TIMEOUT, WORKERS, JOB_MS… */
  readonly env: Readonly<Record<string, string>>
  readonly print: (line: string) => void
}

export const defaults: DemoOptions = {
  httpClients: 50,
  grpcClients: 10,
  jobs: 2000,
  loadMillis: 3000,
  maxWorkMs: 400,
  env: { DRAIN_DELAY: "1s", DRAIN_TIMEOUT: "10s", SHUTDOWN_TIMEOUT: "20s", WORKERS: "8", JOB_MS: "20" },
  print: (line) => console.log(line)
}

interface Counts {
  readonly sent: number
  readonly ok: number
  readonly failed: number
}

export interface DemoResult {
  /** Requests sent before the signal: every one must end ok. */
  readonly beforeSignal: Counts
  readonly beforeSignalByKind: { readonly http: Counts; readonly grpc: Counts }
  /** How each request sent before the signal that did not end ok ended, if any did. */
  readonly failuresBeforeSignal: ReadonlyArray<string>
  /** HTTP connections the clients had opened when the signal was sent. */
  readonly connectionsAtSignal: number
  readonly inFlightAtSignal: number
  readonly inFlightFinishedOk: number
  /** Requests sent after the signal: served through the drain delay, then refused. */
  readonly afterSignal: Counts & { readonly refused: number; readonly reset: number }
  /** Milliseconds from the signal until readiness answered 503, if it did during the drain delay. */
  readonly readiness503After: number | undefined
  readonly streamEnding: string
  readonly jobs: {
    readonly enqueued: number
    readonly done: number
    readonly pending: number
    readonly claimed: number
    readonly failed: number
    readonly lost: number
    readonly doneTwice: number
  }
  readonly signalToExitMs: number
  readonly exitCode: number | null
  readonly report: string
}

const main = fileURLToPath(new URL("./main.ts", import.meta.url))
/** Past these, a service that has not started, or not exited after its signal, is killed and the run fails. */
const START_BOUND_MS = 30_000
const EXIT_BOUND_MS = 60_000

const startService = (env: Record<string, string>) => {
  const child = spawn(process.execPath, [main], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => output += chunk)
  child.stderr.on("data", (chunk: Buffer) => output += chunk)
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => {
    let at = 0
    child.on("exit", () => at = performance.now())
    child.on("close", (code) => resolve({ code, at }))
  })
  const ports = new Promise<Ports>((resolve, reject) => {
    const bound = setTimeout(() => child.kill("SIGKILL"), START_BOUND_MS)
    const check = () => {
      const found = listeningPorts(output)
      if (found === undefined) return
      clearTimeout(bound)
      resolve(found)
    }
    child.stdout.on("data", check)
    void exited.then(() => {
      clearTimeout(bound)
      reject(new Error(`the service exited before listening:\n${output}`))
    })
  })
  return { child, ports, exited, output: () => output }
}

const post = (port: number, path: string) => fetch(`http://127.0.0.1:${port}${path}`, { method: "POST" })
const status = (port: number, path: string) => fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.status, () => undefined)

/** Polls readiness until it says 503 (as a load balancer's health check would); the time it took. */
const readinessFlip = async (port: number, within: number) => {
  const start = performance.now()
  while (performance.now() - start < within) {
    if (await status(port, "/readyz") === 503) return Math.round(performance.now() - start)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return undefined
}

const countStream = (port: number) =>
  new Promise<string>((resolve) => {
    const client = workClient(port)
    let last = false
    const stream = client.Count({ n: 1_000_000, every_ms: 100 })
    stream.on("data", (tick: { n: number; last: boolean }) => last = tick.last)
    stream.on("error", (error: Error) => resolve(`error: ${error.message}`))
    stream.on("status", (s: { code: number }) => resolve(s.code === 0 ? `OK${last ? ", with a last tick" : ""}` : `status ${s.code}`))
  })

const count = (samples: ReadonlyArray<Sample>) => ({
  sent: samples.length,
  ok: samples.filter((s) => s.outcome === "ok").length,
  failed: samples.filter((s) => s.outcome !== "ok").length
})

/**
 * The job queue's state from its SQLite file: counts by state, and what
 * breaks the promise — lost (enqueued but missing, done without its result,
 * a result for a job not done) and done twice (more than one result).
 */
export const readJobs = (path: string, enqueued: number): DemoResult["jobs"] => {
  const db = new DatabaseSync(path, { readOnly: true })
  const states = Object.fromEntries(
    (db.prepare("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").all() as Array<{ state: string; n: number }>)
      .map((row) => [row.state, row.n])
  )
  const doneWithoutResult = (db.prepare(
    "SELECT COUNT(*) AS n FROM jobs WHERE state = 'done' AND id NOT IN (SELECT job FROM results)"
  ).get() as { n: number }).n
  const doneTwice = (db.prepare(
    "SELECT COUNT(*) AS n FROM (SELECT job FROM results GROUP BY job HAVING COUNT(*) > 1)"
  ).get() as { n: number }).n
  const resultsForUnfinished = (db.prepare(
    "SELECT COUNT(*) AS n FROM results WHERE job IN (SELECT id FROM jobs WHERE state <> 'done')"
  ).get() as { n: number }).n
  const total = (db.prepare("SELECT COUNT(*) AS n FROM jobs").get() as { n: number }).n
  db.close()
  return {
    enqueued,
    done: states["done"] ?? 0,
    pending: states["pending"] ?? 0,
    claimed: states["claimed"] ?? 0,
    failed: states["failed"] ?? 0,
    // Lost: enqueued but not in the queue, or marked done with no result, or a
    // result for a job not marked done.
    lost: enqueued - total + doneWithoutResult + resultsForUnfinished,
    doneTwice
  }
}

/** Runs the scenario and returns what happened. */
export const runDemo = async (options: DemoOptions = defaults): Promise<DemoResult> => {
  const dir = mkdtempSync(join(tmpdir(), "effect-graceful-demo-"))
  const database = join(dir, "jobs.db")
  const service = startService({ ...options.env, HOST: "127.0.0.1", PORT: "0", WEB_PORT: "0", GRPC_PORT: "0", JOBS_DB: database })
  let child: ChildProcess | undefined = service.child
  try {
    const ports = await service.ports
    options.print(`service started (pid ${service.child.pid}): api :${ports.api}, express :${ports.web}, grpc :${ports.grpc}`)
    const enqueued = (await (await post(ports.api, `/jobs?n=${options.jobs}`)).json() as { enqueued: number }).enqueued
    const load = startLoad(ports, { http: options.httpClients, grpc: options.grpcClients, maxWorkMs: options.maxWorkMs })
    const stream = countStream(ports.grpc)
    options.print(`load: ${options.httpClients} HTTP and ${options.grpcClients} gRPC clients; ${enqueued} jobs enqueued`)
    await new Promise((resolve) => setTimeout(resolve, options.loadMillis))
    const connectionsAtSignal = load.connections()
    const signalAt = performance.now()
    service.child.kill("SIGTERM")
    options.print(`SIGTERM sent after ${options.loadMillis} ms of load`)
    const readiness = await readinessFlip(ports.api, 1000)
    const bound = setTimeout(() => service.child.kill("SIGKILL"), EXIT_BOUND_MS)
    const { at, code } = await service.exited
    clearTimeout(bound)
    child = undefined
    await load.stop()
    const before = load.samples.filter((s) => s.sentAt < signalAt)
    const inFlight = before.filter((s) => s.endedAt > signalAt)
    const after = load.samples.filter((s) => s.sentAt >= signalAt)
    const report = service.output().slice(service.output().indexOf("shutdown report"))
    return {
      beforeSignal: count(before),
      beforeSignalByKind: {
        http: count(before.filter((s) => s.kind === "http")),
        grpc: count(before.filter((s) => s.kind === "grpc"))
      },
      failuresBeforeSignal: before.filter((s) => s.outcome !== "ok").map((s) => `${s.kind} ${s.outcome}: ${s.detail}`),
      connectionsAtSignal,
      inFlightAtSignal: inFlight.length,
      inFlightFinishedOk: inFlight.filter((s) => s.outcome === "ok").length,
      afterSignal: {
        ...count(after),
        refused: after.filter((s) => s.outcome === "refused").length,
        reset: after.filter((s) => s.outcome === "reset").length
      },
      readiness503After: readiness,
      streamEnding: await stream,
      jobs: readJobs(database, enqueued),
      signalToExitMs: Math.round(at - signalAt),
      exitCode: code,
      report
    }
  } finally {
    child?.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The result as the demo prints it. */
export const describe = (r: DemoResult): string =>
  [
    "",
    "requests sent before SIGTERM     " +
    `${r.beforeSignal.sent} sent, ${r.beforeSignal.ok} ok, ${r.beforeSignal.failed} failed`,
    `in flight at the signal          ${r.inFlightAtSignal}, of which ${r.inFlightFinishedOk} finished ok`,
    "requests sent after SIGTERM      " +
    `${r.afterSignal.sent} sent, ${r.afterSignal.ok} ok (drain delay), ${r.afterSignal.refused} refused (listener closed), ` +
    `${r.afterSignal.reset} reset, ${r.afterSignal.failed - r.afterSignal.refused - r.afterSignal.reset} other`,
    `readiness after SIGTERM          ${r.readiness503After === undefined ? "never said 503" : `503 within ${r.readiness503After} ms`}`,
    `a gRPC stream open at SIGTERM    ended ${r.streamEnding}`,
    `jobs                             ${r.jobs.enqueued} enqueued: ${r.jobs.done} done, ${r.jobs.pending} pending, ` +
    `${r.jobs.claimed} claimed, ${r.jobs.failed} failed, ${r.jobs.lost} lost, ${r.jobs.doneTwice} done twice`,
    `signal to exit                   ${r.signalToExitMs} ms`,
    `exit code                        ${r.exitCode}`,
    "",
    r.report.trimEnd()
  ].join("\n")

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runDemo()
  console.log(describe(result))
  const ok = result.beforeSignal.failed === 0 && result.jobs.lost === 0 && result.jobs.doneTwice === 0 &&
    result.exitCode === 0
  console.log(ok ? "\nnothing lost." : "\nSOMETHING WAS LOST: see above.")
  process.exitCode = ok ? 0 : 1
}
