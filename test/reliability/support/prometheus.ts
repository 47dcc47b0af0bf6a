/**
 * A real Prometheus (Debian's `prometheus` package) scraping one target: a
 * configuration and a TSDB in a temporary directory, the web API on a
 * loopback port free when it starts, killed after the test, also when it
 * fails. The test reads back what it scraped through the HTTP API
 * (`/api/v1/query`): raw samples, with the timestamps of their scrapes, from a
 * range selector (`metric[15m]`).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { freePort } from "./haproxy.ts"

/** One series of a query's answer: its labels, and its samples as [seconds since the epoch, value]. */
export interface Series {
  readonly metric: Readonly<Record<string, string>>
  readonly samples: ReadonlyArray<readonly [number, number]>
}

export interface Prometheus {
  /** `prometheus --version`, first line. */
  readonly version: string
  readonly url: string
  /** An instant query (at the server's now); a vector's series have one sample each, a matrix's all of theirs. */
  readonly query: (promql: string) => Promise<ReadonlyArray<Series>>
  /** Resolves once `promql` answers at least one series; performance.now() at that moment. */
  readonly waitFor: (promql: string, timeoutMs?: number) => Promise<number>
  readonly output: () => string
}

/** The prometheus binary; throws — the scenario fails, it is not skipped — if it is not installed. */
export const prometheusBinary = (): string => {
  for (const candidate of ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]) {
    if (existsSync(candidate)) return candidate
  }
  try {
    return execFileSync("sh", ["-c", "command -v prometheus"], { encoding: "utf8" }).trim()
  } catch {
    throw new Error("prometheus is not installed: run test/reliability/setup.sh (npm run test:reliability does)")
  }
}

const configuration = (job: string, target: string, intervalMs: number) =>
  [
    "global:",
    `  scrape_interval: ${intervalMs}ms`,
    // At most the interval (Prometheus refuses more); a slower scrape is a failed one (up 0), not a late one.
    `  scrape_timeout: ${intervalMs}ms`,
    "scrape_configs:",
    `  - job_name: ${job}`,
    "    static_configs:",
    `      - targets: ["${target}"]`,
    ""
  ].join("\n")

interface Answer {
  readonly status?: string
  readonly error?: string
  readonly data?: {
    readonly resultType?: string
    readonly result?: ReadonlyArray<{
      readonly metric?: Record<string, string>
      readonly value?: readonly [number, string]
      readonly values?: ReadonlyArray<readonly [number, string]>
    }>
  }
}

const series = (answer: Answer): ReadonlyArray<Series> =>
  (answer.data?.result ?? []).map((entry) => ({
    metric: entry.metric ?? {},
    samples: (entry.values ?? (entry.value === undefined ? [] : [entry.value])).map(([at, value]) => [at, Number(value)] as const)
  }))

const startOnce = (binary: string, dir: string, port: number, file: string) => {
  const child: ChildProcess = spawn(binary, [
    `--config.file=${file}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`
  ], { stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => output += chunk)
  child.stderr?.on("data", (chunk: Buffer) => output += chunk)
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
  return { child, exited, output: () => output }
}

/**
 * Starts Prometheus in `dir` scraping `target` (host:port, `/metrics`) every
 * `intervalMs` as job `job`; `onExit` registers its stop (SIGKILL, then its
 * exit, so that nothing writes into `dir` once it is removed). Resolves once
 * `/-/ready` answers 200. Its port is picked free just before it starts; if
 * another process took it meanwhile, Prometheus exits and is started again
 * on another.
 */
export const startPrometheus = async (
  dir: string,
  { intervalMs, job, target }: { readonly job: string; readonly target: string; readonly intervalMs: number },
  onExit: (stop: () => Promise<void>) => void
): Promise<Prometheus> => {
  const binary = prometheusBinary()
  const version = execFileSync(binary, ["--version"], { encoding: "utf8" }).split("\n")[0] ?? ""
  const file = join(dir, "prometheus.yml")
  writeFileSync(file, configuration(job, target, intervalMs))
  for (let attempt = 1;; attempt++) {
    const port = await freePort()
    const running = startOnce(binary, dir, port, file)
    onExit(async () => {
      if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill("SIGKILL")
      await running.exited
    })
    const url = `http://127.0.0.1:${port}`
    const deadline = performance.now() + 30_000
    let ready = false
    while (!ready) {
      if (running.child.exitCode !== null) break
      if (performance.now() > deadline) throw new Error(`prometheus not ready within 30 s:\n${running.output()}`)
      ready = await fetch(`${url}/-/ready`).then((response) => response.ok, () => false)
      if (!ready) await sleep(50)
    }
    if (!ready) {
      if (attempt < 3 && /address already in use/.test(running.output())) continue
      throw new Error(`prometheus exited (${running.child.exitCode}):\n${running.output()}`)
    }
    const query = async (promql: string) => {
      const response = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`)
      const answer = (await response.json()) as Answer
      if (answer.status !== "success") throw new Error(`prometheus: ${promql}: ${answer.error ?? JSON.stringify(answer)}`)
      return series(answer)
    }
    return {
      version,
      url,
      query,
      output: running.output,
      waitFor: async (promql, timeoutMs = 30_000) => {
        const until = performance.now() + timeoutMs
        for (;;) {
          if ((await query(promql)).length > 0) return performance.now()
          if (performance.now() > until) throw new Error(`prometheus: no ${promql} within ${timeoutMs} ms:\n${running.output()}`)
          await sleep(50)
        }
      }
    }
  }
}
