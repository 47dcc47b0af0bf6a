/**
 * The example service under the real PM2 (the `pm2` devDependency), as
 * examples/pm2/ecosystem.config.cjs runs it: cluster mode, 2 instances,
 * `wait_ready`, a `kill_timeout` above the shutdown timeout. Each test has a
 * PM2 daemon of its own (PM2_HOME in a temporary directory, `pm2 kill` after
 * it) on this Node, loopback ports the system picked, and the file's app with
 * only those ports, HOST and JOBS_DB added (and, for the contrasts, one
 * setting changed).
 *
 * The promises:
 *
 * - `pm2 reload`, 5 times, under bounded HTTP load (keep-alive loops on the
 *   Effect API port, a new connection per request on the Express port) and one
 *   grpc-js channel, all through the ports the cluster primary shares: 0 failed
 *   requests; every old instance exits 0 (PM2's log) with a full report.
 * - `pm2 stop` with a 3 s request in flight: it completes with 200; each
 *   instance writes its shutdown report, every row `done`, exit 0; PM2 never
 *   SIGKILLs.
 * - The contrasts that show why the file sets what it sets, asserted to fail
 *   as the issue says: with PM2's default kill_timeout (1,600 ms) the same
 *   request is lost, PM2 SIGKILLs the instance that held it and that instance
 *   writes no report; without 'ready' (`sendReady: false`), `wait_ready`
 *   waits out `listen_timeout` for each instance.
 *
 * Times are recorded, never bounded above.
 *
 * Full suite only (`npm run test:reliability`): it fails, not skips, if PM2
 * cannot run here.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { once } from "node:events"
import { writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import type { LoadConfig, LoadSummary } from "../fixtures/handoffLoad.ts"
import { get, type Reply } from "../../support/http.ts"
import { lab } from "../support/lab.ts"
import { freePorts, type Instance, type Pm2, reportsIn, startPm2 } from "../support/pm2.ts"
import { logLines, outcomes, shutdownReport, type ShutdownReport } from "../support/report.ts"
import { record, spread } from "../support/results.ts"

const { defer, tempDir } = lab()
const loadDriver = fileURLToPath(new URL("../fixtures/handoffLoad.ts", import.meta.url))
const noReadyService = fileURLToPath(new URL("../fixtures/serviceNoReady.ts", import.meta.url))

const ecosystem: unknown = createRequire(import.meta.url)("../../../examples/pm2/ecosystem.config.cjs")
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null
const theApp = (): Record<string, unknown> => {
  const apps = isRecord(ecosystem) ? ecosystem["apps"] : undefined
  const app: unknown = Array.isArray(apps) ? apps[0] : undefined
  if (!isRecord(app) || !isRecord(app["env"])) throw new Error("examples/pm2/ecosystem.config.cjs: no app with an env")
  return app
}
const APP = theApp()
const NAME = String(APP["name"])
const INSTANCES = Number(APP["instances"])
const KILL_TIMEOUT_MS = Number(APP["kill_timeout"])
const LISTEN_TIMEOUT_MS = Number(APP["listen_timeout"])
const APP_ENV = APP["env"] as Record<string, unknown>

const RELOADS = 5
const STOP_TRIALS = 3
const SLOW_MS = 3_000
const PM2_DEFAULT_KILL_TIMEOUT_MS = 1_600
const ALL_DONE = ["api: done", "grpc: done", "jobs db: done", "jobs lease: done", "jobs: done", "web: done"]

interface Ports {
  readonly api: number
  readonly web: number
  readonly grpc: number
}

interface Deployed {
  readonly pm2: Pm2
  readonly ports: Ports
  readonly instances: ReadonlyArray<Instance>
  /** How long `pm2 start` took: until PM2 counted every instance started. */
  readonly startMs: number
}

/**
 * A daemon of its own, and the file's app started on it with `change`
 * applied (a value `undefined` removes the setting: PM2's default).
 */
const deploy = async (change: Record<string, unknown> = {}): Promise<Deployed> => {
  const dir = tempDir()
  const pm2 = startPm2(join(dir, "pm2"), defer)
  const [api, web, grpc] = await freePorts(3)
  const ports = { api: api!, web: web!, grpc: grpc! }
  const app: Record<string, unknown> = {
    ...APP,
    ...change,
    env: {
      ...APP_ENV,
      HOST: "127.0.0.1",
      PORT: String(ports.api),
      WEB_PORT: String(ports.web),
      GRPC_PORT: String(ports.grpc),
      JOBS_DB: join(dir, "jobs.db")
    }
  }
  const file = join(dir, "ecosystem.json")
  writeFileSync(file, JSON.stringify({ apps: [app] }))
  const started = await pm2.ok(["start", file])
  const instances = await pm2.list()
  assert.deepStrictEqual(
    instances.map((instance) => [instance.status, instance.nodeVersion.split(".")[0]]),
    Array.from({ length: INSTANCES }, () => ["online", "24"]),
    "every instance online, on the daemon's Node 24"
  )
  return { pm2, ports, instances, startMs: started.elapsedMs }
}

/** PM2's exit lines for the app: `App [example:_old_0] exited with code [0] via signal [SIGINT]`. */
const exits = (daemonLog: string) =>
  [...daemonLog.matchAll(/App \[[^:\]]+:([^\]]+)\] exited with code \[(\d+)\] via signal \[(\w+)\]/g)].map(([, id, code, signal]) => ({
    id: id!,
    code: Number(code),
    signal: signal!
  }))

/** PM2's SIGKILLs: `Process with pid 123 still alive after 1600ms, sending SIGKILL…`. */
const sigkills = (daemonLog: string) =>
  [...daemonLog.matchAll(/Process with pid (\d+) still alive after (\d+)ms, sending SIGKILL/g)].map(([, pid, after]) => ({
    pid: Number(pid),
    afterMs: Number(after)
  }))

/** Equal strings counted: `2 × a, 1 × b`. */
const tallied = (values: ReadonlyArray<string>): string => {
  const counts = new Map<string, number>()
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1)
  return [...counts].map(([value, n]) => `${n} × ${value}`).join(", ")
}

/** The rows that are not `done`, then the report's ending and exit code. */
const verdict = (report: ShutdownReport) => ({
  notDone: outcomes(report).filter((row) => !row.endsWith(": done")),
  ending: report.ending,
  exitCode: report.exitCode
})
const clean = { notDone: [], ending: "graceful", exitCode: 0 }

interface LoadProcess {
  readonly running: Promise<void>
  readonly stop: () => Promise<LoadSummary>
}

/** The handoff scenario's load driver, on this machine's loopback. */
const startLoad = (config: LoadConfig): LoadProcess => {
  const child = spawn(process.execPath, [loadDriver, JSON.stringify(config)], { stdio: ["pipe", "pipe", "pipe"] })
  defer(() => child.kill("SIGKILL"))
  let output = ""
  let onOutput = () => {}
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString()
    onOutput()
  })
  child.stderr.on("data", (chunk: Buffer) => output += chunk.toString())
  const closed = once(child, "close") as Promise<[number | null]>
  const running = new Promise<void>((resolve, reject) => {
    onOutput = () => output.includes("load running") && resolve()
    void closed.then(([code]) => reject(new Error(`the load driver exited ${code} before it ran:\n${output}`)))
  })
  return {
    running,
    stop: async () => {
      child.kill("SIGTERM")
      const [code] = await closed
      assert.strictEqual(code, 0, `the load driver failed:\n${output}`)
      const last = output.trim().split("\n").at(-1)!
      return JSON.parse(last) as LoadSummary
    }
  }
}

interface StopTrial {
  readonly reply: Reply
  readonly stopMs: number
  readonly instances: ReadonlyArray<Instance>
  readonly daemonLog: string
  /** Each instance's stdout, by pm_id. */
  readonly outputs: ReadonlyArray<string>
}

/** Starts the app with `change`, sends a 3 s request, then `pm2 stop` 300 ms later. */
const stopWithSlowRequest = async (change: Record<string, unknown>): Promise<StopTrial> => {
  const { instances, pm2, ports } = await deploy(change)
  const reply = get(ports.api, `/work?ms=${SLOW_MS}`)
  await sleep(300)
  const stopped = await pm2.ok(["stop", NAME])
  return {
    reply: await reply,
    stopMs: stopped.elapsedMs,
    instances,
    daemonLog: pm2.daemonLog(),
    outputs: instances.map((instance) => pm2.out(NAME, instance.pmId))
  }
}

describe("the example service under PM2 (cluster mode, 2 instances)", () => {
  it(`${RELOADS} × pm2 reload under HTTP and gRPC load through the shared ports: 0 failed requests`, async () => {
    const { pm2, ports, startMs, instances: first } = await deploy()
    const httpLoop = { loops: 10, pauseMs: 20, maxWorkMs: 50 }
    const keepAlive = startLoad({
      http: { port: ports.api, mode: "keep-alive", ...httpLoop },
      grpc: { port: ports.grpc, loops: 5, pauseMs: 20, maxWorkMs: 20 },
      timeoutMs: 10_000
    })
    const fresh = startLoad({ http: { port: ports.web, mode: "new-connection", ...httpLoop }, timeoutMs: 10_000 })
    await Promise.all([keepAlive.running, fresh.running])
    await sleep(1_000)
    const reloadMs: Array<number> = []
    const generations: Array<ReadonlyArray<Instance>> = [first]
    for (let round = 0; round < RELOADS; round++) {
      const reloaded = await pm2.ok(["reload", NAME])
      reloadMs.push(reloaded.elapsedMs)
      generations.push(await pm2.list())
      await sleep(500)
    }
    const [summary, freshSummary] = await Promise.all([keepAlive.stop(), fresh.stop()])
    const samples = [
      ...summary.samples.map((sample) => ({ ...sample, load: sample.kind === "grpc" ? "gRPC channel" : "keep-alive (API)" })),
      ...freshSummary.samples.map((sample) => ({ ...sample, load: "new connection (Express)" }))
    ]
    const failed = samples.filter((sample) => sample.outcome !== "ok")
    const daemonLog = pm2.daemonLog()
    const oldExits = exits(daemonLog).filter((exit) => exit.id.startsWith("_old_"))
    const outputs = first.map((instance) => pm2.out(NAME, instance.pmId))
    const reports = outputs.flatMap((output) => reportsIn(output).pieces.map(shutdownReport))
    const count = (kind: "http" | "grpc", load: LoadSummary) => load.samples.filter((sample) => sample.kind === kind).length
    const grpcPids = Object.keys(summary.grpcPids).length
    record({
      family: "PM2",
      scenario: `cluster mode, ${INSTANCES} instances, ${RELOADS} × pm2 reload under load through the shared ports`,
      trials: oldExits.length,
      requests: samples.length,
      failures: failed.length,
      signalToExitMs: reports.map((report) => report.totalMillis),
      exitCodes: oldExits.map((exit) => exit.code),
      notes: [
        `load: 10 keep-alive HTTP/1.1 loops (one http.Agent) on the Effect API port and 5 loops of unary gRPC calls on ` +
        `one grpc-js channel: ${count("http", summary)} HTTP + ${count("grpc", summary)} gRPC; 10 loops of a new ` +
        `connection per request on the Express port: ${count("http", freshSummary)}; ${failed.length} failed${
          failed.length === 0 ? "" : ` (${tallied(failed.map((sample) => `${sample.load}: ${sample.detail}`))})`
        }`,
        `HTTP connections used by the keep-alive loops: ${summary.httpConnections}; instances that answered the one ` +
        `gRPC channel: ${grpcPids} (of ${INSTANCES * (RELOADS + 1)})`,
        `pm2 reload took ${spread(reloadMs)} ms (min / median / max; each instance in turn: the new one starts and sends ` +
        `'ready', then the old one gets SIGINT and drains); pm2 start of ${INSTANCES} instances ${Math.round(startMs)} ms`,
        `old instances: ${oldExits.length} exits (${
          [...new Set(oldExits.map((exit) => `code ${exit.code} via ${exit.signal}`))].join(", ")
        }), ${sigkills(daemonLog).length} SIGKILLed; ${reports.length} shutdown reports, reasons ${
          [...new Set(reports.map((report) => report.reason))].join(", ")
        }; the signal → exit column: each report's totalMillis (quit event → report)`,
        `instances: DRAIN_DELAY ${String(APP_ENV["DRAIN_DELAY"])}, SHUTDOWN_TIMEOUT ${
          String(APP_ENV["SHUTDOWN_TIMEOUT"])
        }, kill_timeout ${KILL_TIMEOUT_MS} ms, listen_timeout ${LISTEN_TIMEOUT_MS} ms (the ecosystem file's)`
      ]
    })

    assert.isAbove(count("http", summary), 0)
    assert.isAbove(count("http", freshSummary), 0)
    assert.isAbove(count("grpc", summary), 0)
    assert.deepStrictEqual(failed, [], `${failed.length} of ${samples.length} requests failed`)
    // Each reload replaced every instance: new pids, all online.
    for (let round = 1; round <= RELOADS; round++) {
      const [before, after] = [generations[round - 1]!, generations[round]!]
      assert.deepStrictEqual(after.map((instance) => instance.status), Array.from({ length: INSTANCES }, () => "online"))
      assert.deepStrictEqual(after.filter((instance) => before.some((old) => old.pid === instance.pid)), [], `reload ${round}`)
    }
    // The one gRPC channel followed the shared port from generation to generation.
    assert.isAtLeast(grpcPids, RELOADS + 1)
    // Every old instance stopped by PM2's SIGINT, exited 0, never SIGKILLed; each wrote its full report.
    assert.deepStrictEqual(oldExits.map((exit) => [exit.code, exit.signal]), Array.from({ length: INSTANCES * RELOADS }, () => [0, "SIGINT"]))
    assert.deepStrictEqual(sigkills(daemonLog), [])
    assert.strictEqual(reports.length, INSTANCES * RELOADS, outputs.join("\n"))
    for (const report of reports) {
      assert.deepStrictEqual(verdict(report), clean)
      assert.strictEqual(report.reason, "SIGINT")
      assert.deepStrictEqual(outcomes(report), ALL_DONE)
    }
  }, 300_000)

  it(`pm2 stop with a ${SLOW_MS / 1000} s request in flight: it completes with 200, each instance reports; with PM2's default kill_timeout it is lost`, async () => {
    const kept: Array<StopTrial> = []
    const cut: Array<StopTrial> = []
    for (let trial = 0; trial < STOP_TRIALS; trial++) {
      kept.push(await stopWithSlowRequest({}))
      // PM2's default: the setting removed.
      cut.push(await stopWithSlowRequest({ kill_timeout: undefined }))
    }
    const reportsOf = (trial: StopTrial) => trial.outputs.map((output) => reportsIn(output).pieces.map(shutdownReport))
    const keptExits = kept.flatMap((trial) => exits(trial.daemonLog))
    const cutKills = cut.map((trial) => sigkills(trial.daemonLog))
    const killedInstance = (trial: StopTrial, pid: number) => trial.instances.findIndex((instance) => instance.pid === pid)
    const inFlightAtDrain = (reports: ReadonlyArray<ReadonlyArray<ShutdownReport>>) =>
      reports.flat().flatMap((report) => report.rows).filter((row) => row.name === "api")
        .reduce((n, row) => n + (row.inFlightAtDrain ?? 0), 0)
    const describeReply = (reply: Reply) => reply.status === undefined ? reply.error ?? "no answer" : `HTTP ${reply.status}`
    record({
      family: "PM2",
      scenario: `pm2 stop, a ${SLOW_MS / 1000} s request in flight, kill_timeout ${KILL_TIMEOUT_MS} ms (the ecosystem file)`,
      trials: kept.length,
      requests: kept.length,
      failures: kept.filter((trial) => trial.reply.status !== 200).length,
      signalToExitMs: kept.map((trial) => trial.stopMs),
      exitCodes: keptExits.map((exit) => exit.code),
      notes: [
        `the requests: ${kept.map((trial) => describeReply(trial.reply)).join(", ")}; reports written: ${
          kept.map((trial) => reportsOf(trial).flat().length).join(", ")
        } (of ${INSTANCES} per trial); the api rows counted ${
          kept.map((trial) => inFlightAtDrain(reportsOf(trial))).join(", ")
        } in flight at the drain; PM2 SIGKILLs: ${kept.reduce((n, trial) => n + sigkills(trial.daemonLog).length, 0)}`,
        `the signal → exit column: the whole \`pm2 stop\` (PM2 stops the ${INSTANCES} instances one after the other, SIGINT each)`
      ]
    })
    record({
      family: "PM2",
      scenario: `contrast: pm2 stop, a ${SLOW_MS / 1000} s request in flight, PM2's default kill_timeout (${PM2_DEFAULT_KILL_TIMEOUT_MS} ms)`,
      trials: cut.length,
      requests: cut.length,
      failures: cut.filter((trial) => trial.reply.status !== 200).length,
      signalToExitMs: cut.map((trial) => trial.stopMs),
      exitCodes: cut.flatMap((trial) =>
        exits(trial.daemonLog).map((exit) => exit.signal === "SIGKILL" ? null : exit.code)
      ),
      notes: [
        `the requests: ${cut.map((trial) => describeReply(trial.reply)).join(", ")}; PM2 SIGKILLed ${
          cutKills.map((kills) => kills.map((kill) => `pid ${kill.pid} after ${kill.afterMs} ms`).join(" and ") || "nothing").join("; ")
        }; reports written by the SIGKILLed instances: ${
          cut.map((trial, i) => cutKills[i]!.map((kill) => reportsIn(trial.outputs[killedInstance(trial, kill.pid)] ?? "").pieces.length).join("+")).join(", ")
        }; this failure is the point: it is why the ecosystem file sets kill_timeout`
      ]
    })

    for (const trial of kept) {
      assert.deepStrictEqual([trial.reply.status, trial.reply.body], [200, `worked ${SLOW_MS} ms\n`], describeReply(trial.reply))
      assert.deepStrictEqual(sigkills(trial.daemonLog), [])
      assert.deepStrictEqual(exits(trial.daemonLog).map((exit) => [exit.code, exit.signal]), Array.from({ length: INSTANCES }, () => [0, "SIGINT"]))
      const reports = reportsOf(trial)
      // One report per instance, each complete: every row done, graceful, exit 0.
      assert.deepStrictEqual(reports.map((pieces) => pieces.length), Array.from({ length: INSTANCES }, () => 1), trial.outputs.join("\n"))
      for (const report of reports.flat()) {
        assert.deepStrictEqual(verdict(report), clean)
        assert.deepStrictEqual(outcomes(report), ALL_DONE)
      }
      // The request was in flight at the drain, in one of them.
      assert.strictEqual(inFlightAtDrain(reports), 1)
    }
    for (const [i, trial] of cut.entries()) {
      assert.notStrictEqual(trial.reply.status, 200, "with PM2's default kill_timeout the 3 s request is lost")
      const kills = cutKills[i]!
      assert.deepStrictEqual(kills.map((kill) => kill.afterMs), [PM2_DEFAULT_KILL_TIMEOUT_MS])
      const killed = killedInstance(trial, kills[0]!.pid)
      assert.isAtLeast(killed, 0, "the SIGKILLed process is one of the instances")
      const output = trial.outputs[killed]!
      // It was draining (the quit event came, from the SIGINT) when PM2 killed it, and wrote no report.
      assert.isTrue(logLines(output).some((line) => line.message.startsWith("quit event (SIGINT)")), output)
      assert.deepStrictEqual(reportsIn(output).pieces, [], output)
    }
  }, 300_000)

  it("contrast: without 'ready' (sendReady: false) pm2 start waits out listen_timeout for each instance", async () => {
    const withReady = await deploy()
    const withoutReady = await deploy({ script: noReadyService })
    const serving = await get(withoutReady.ports.api, "/work?ms=0")
    record({
      family: "PM2",
      scenario: `contrast: pm2 start of ${INSTANCES} instances with wait_ready, listen_timeout ${LISTEN_TIMEOUT_MS} ms, no 'ready' sent`,
      trials: 1,
      signalToExitMs: [],
      exitCodes: [],
      notes: [
        `pm2 start took ${Math.round(withoutReady.startMs)} ms without 'ready' (sendReady: false), ` +
        `${Math.round(withReady.startMs)} ms with it (examples/main.ts)`
      ]
    })

    // PM2 counted each instance started only at its listen_timeout, one after the other.
    assert.isAtLeast(withoutReady.startMs, INSTANCES * LISTEN_TIMEOUT_MS)
    // Then it counted them started anyway: the instances serve.
    assert.strictEqual(serving.status, 200)
  }, 120_000)
})
