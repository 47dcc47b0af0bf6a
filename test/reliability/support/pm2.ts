/**
 * A PM2 daemon of the test's own: the real `pm2` CLI (the devDependency), run
 * on this Node — so that the daemon, and the cluster workers it forks with
 * its own Node, are Node 24 — with PM2_HOME in a temporary directory, killed
 * (`pm2 kill`) after the test, also when it fails; any daemon or worker still
 * alive then (one this test started, by its id) is SIGKILLed.
 *
 * PM2's files under PM2_HOME: `pm2.log` (the daemon's log: starts, stops,
 * exits, SIGKILLs, one-second timestamps) and `logs/<app>-out-<pm_id>.log`,
 * each worker's stdout, appended by every generation of that id.
 */
import { execFile } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { createServer } from "node:net"
import { dirname, join } from "node:path"

const pm2Bin = createRequire(import.meta.url).resolve("pm2/bin/pm2")

export interface Ran {
  readonly code: number
  readonly output: string
  readonly elapsedMs: number
}

export interface Instance {
  readonly pmId: number
  readonly pid: number
  readonly status: string
  readonly restarts: number
  readonly nodeVersion: string
  readonly outLog: string
}

export interface Pm2 {
  readonly home: string
  /** Runs `pm2 <args>`; never rejects. */
  readonly run: (args: ReadonlyArray<string>) => Promise<Ran>
  /** `pm2 <args>`, which must exit 0. */
  readonly ok: (args: ReadonlyArray<string>) => Promise<Ran>
  /** `pm2 jlist`: the instances of every app. */
  readonly list: () => Promise<ReadonlyArray<Instance>>
  /** The daemon's log. */
  readonly daemonLog: () => string
  /** What the instances of `app` under `pmId` wrote to stdout (every generation). */
  readonly out: (app: string, pmId: number) => string
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

export const startPm2 = (home: string, defer: (cleanup: () => unknown) => void): Pm2 => {
  mkdirSync(home, { recursive: true })
  // PM2 phones home (a version check) the first time it sees a PM2_HOME
  // without this file: none of that from a test.
  writeFileSync(join(home, "touch"), String(Date.now()))
  const env = {
    ...process.env,
    PM2_HOME: home,
    PM2_DISABLE_VERSION_CHECK: "true",
    // The CLI checks that `node` on the PATH strips types before it starts a
    // .ts app: this Node first.
    PATH: `${dirname(process.execPath)}:${process.env["PATH"] ?? ""}`,
    FORCE_COLOR: "0"
  }
  const run = (args: ReadonlyArray<string>) =>
    new Promise<Ran>((resolve) => {
      const startedAt = performance.now()
      execFile(process.execPath, [pm2Bin, ...args], { env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resolve({ code, output: stdout + stderr, elapsedMs: performance.now() - startedAt })
      })
    })
  const seen = new Set<number>()
  const list = async (): Promise<ReadonlyArray<Instance>> => {
    const ran = await run(["jlist"])
    if (ran.code !== 0) throw new Error(`pm2 jlist failed:\n${ran.output}`)
    const json = ran.output.slice(ran.output.indexOf("["), ran.output.lastIndexOf("]") + 1)
    const parsed: unknown = JSON.parse(json)
    if (!Array.isArray(parsed)) throw new Error(`pm2 jlist: not a list:\n${ran.output}`)
    return parsed.filter(isRecord).map((entry) => {
      const env = isRecord(entry["pm2_env"]) ? entry["pm2_env"] : {}
      const instance: Instance = {
        pmId: Number(entry["pm_id"]),
        pid: Number(entry["pid"]),
        status: String(env["status"]),
        restarts: Number(env["restart_time"]),
        nodeVersion: String(env["node_version"]),
        outLog: String(env["pm_out_log_path"])
      }
      if (instance.pid > 0) seen.add(instance.pid)
      return instance
    })
  }
  const ok = async (args: ReadonlyArray<string>) => {
    const ran = await run(args)
    if (ran.code !== 0) throw new Error(`pm2 ${args.join(" ")} exited ${ran.code}:\n${ran.output}`)
    return ran
  }
  defer(async () => {
    const pidFile = join(home, "pm2.pid")
    const daemon = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : undefined
    if (daemon !== undefined) await run(["kill"])
    for (const pid of [...seen, ...(daemon === undefined ? [] : [daemon])]) {
      if (alive(pid)) process.kill(pid, "SIGKILL")
    }
  })
  const read = (file: string) => existsSync(file) ? readFileSync(file, "utf8") : ""
  return {
    home,
    run,
    ok,
    list,
    daemonLog: () => read(join(home, "pm2.log")),
    out: (app, pmId) => read(join(home, "logs", `${app}-out-${pmId}.log`))
  }
}

/** `count` distinct ports free on 127.0.0.1 now (the system's picks, all held until each is known, then released). */
export const freePorts = async (count: number): Promise<ReadonlyArray<number>> => {
  const servers = Array.from({ length: count }, () => createServer())
  const ports = await Promise.all(servers.map((server) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject)
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resolve(typeof address === "object" && address !== null ? address.port : 0)
      })
    })
  ))
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

/**
 * One instance's stdout, cut into its generations' shutdown reports: each
 * piece ends with a `shutdown report` summary line. What follows the last
 * summary (a generation still running, or one killed before it reported) is
 * `rest`.
 */
export const reportsIn = (output: string): { readonly pieces: ReadonlyArray<string>; readonly rest: string } => {
  const pieces: Array<string> = []
  let current: Array<string> = []
  for (const line of output.split("\n")) {
    current.push(line)
    if (line.includes(`"message":"shutdown report"`)) {
      pieces.push(current.join("\n"))
      current = []
    }
  }
  return { pieces, rest: current.join("\n") }
}
