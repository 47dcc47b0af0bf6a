/**
 * Job queue benchmarks, in one run on this machine:
 *
 * 1. PostgreSQL: N trivial jobs enqueued (chunks of 500) and processed by one
 *    worker process of concurrency 10 — this library's JobQueue beside
 *    graphile-worker and pg-boss on the same server (a fresh database each);
 * 2. SQLite: the same through JobQueue, beside the baseline's JobQueue (the
 *    source at BASELINE_REF, default `main`, extracted into bench/.tmp);
 * 3. from SIGTERM to the pickup, by another process, of a job cut at the
 *    drain deadline and given back (PostgreSQL: NOTIFY; SQLite: its poll).
 *
 *   npm run bench:jobs     # writes bench/jobs/results.md and results.json
 *
 * graphile-worker and pg-boss are installed at bench time into
 * bench/.tmp/jobs-contenders (exact versions below), not as project
 * dependencies; PostgreSQL is the machine's (test/support/install-postgres.sh
 * installs it), started in a temporary folder. Each figure is the median of
 * ROUNDS rounds; the contenders take turns within a round.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, cpus } from "node:os"
import { fileURLToPath } from "node:url"
import { startPostgres } from "../../test/support/postgres.ts"

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const root = here("../../")
const tmp = here("../.tmp/")
const ROUNDS = Number(process.env["ROUNDS"] ?? 3)
const N_PG = Number(process.env["N_PG"] ?? 20_000)
const N_SQLITE = Number(process.env["N_SQLITE"] ?? 5_000)
const PICKUPS = Number(process.env["PICKUPS"] ?? 7)
const BASELINE_REF = process.env["BASELINE_REF"] ?? "main"
const VERSIONS = { "graphile-worker": "0.18.0", "pg-boss": "12.38.1" }

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!

/** The contenders, in a folder of their own (its own package.json and node_modules). */
const installContenders = () => {
  const dir = `${tmp}jobs-contenders`
  const wanted = Object.entries(VERSIONS).map(([name, version]) => `${name}@${version}`)
  const installed = Object.entries(VERSIONS).every(([name, version]) => {
    try {
      return (JSON.parse(execFileSync("cat", [`${dir}/node_modules/${name}/package.json`], { encoding: "utf8" })) as { version: string })
        .version === version
    } catch {
      return false
    }
  })
  if (installed) return
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}/package.json`, JSON.stringify({ name: "jobs-contenders", private: true }))
  console.log(`installing ${wanted.join(", ")} into ${dir}`)
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--no-save", ...wanted, "pg"], { cwd: dir, stdio: "inherit" })
}

/** The baseline's source, for the SQLite comparison. */
const extractBaseline = () => {
  const dir = `${tmp}jobs-main`
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  execFileSync("sh", ["-c", `git archive ${BASELINE_REF} src | tar -x -C ${dir}`], { cwd: root })
  return execFileSync("git", ["rev-parse", "--short", BASELINE_REF], { cwd: root, encoding: "utf8" }).trim()
}

const node = process.execPath

interface Measure {
  readonly enqueueMs: number
  readonly processMs: number
}

const contender = (name: string, database: string, n: number): Promise<Measure> =>
  new Promise((resolve, reject) => {
    const child = spawn(node, [here("./contender.ts"), name, database, String(n)], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => out += chunk.toString())
    child.on("close", (code) => {
      const line = out.trim().split("\n").at(-1) ?? ""
      if (code !== 0) reject(new Error(`${name} exited ${code}: ${out}`))
      else resolve(JSON.parse(line) as Measure)
    })
  })

const waitFor = (child: ChildProcess, pattern: RegExp): Promise<string> =>
  new Promise((resolve, reject) => {
    let out = ""
    const onData = (chunk: Buffer) => {
      out += chunk.toString()
      const match = pattern.exec(out)
      if (match !== null) {
        child.stdout!.off("data", onData)
        resolve(match[0])
      }
    }
    child.stdout!.on("data", onData)
    child.once("exit", () => reject(new Error(`exited before ${pattern}: ${out}`)))
  })

/** SIGTERM to a holder whose job never ends, until a taker starts that job: ms. */
const pickup = async (database: string, enqueue: () => Promise<void>, extra: Record<string, string>) => {
  await enqueue()
  const env = { ...process.env, JOBS_DB: database, DRAIN_DELAY: "0s", DRAIN_TIMEOUT: "100ms", SHUTDOWN_TIMEOUT: "5s", ...extra }
  const holder = spawn(node, [here("./release.ts")], { env: { ...env, ROLE: "holder" }, stdio: ["ignore", "pipe", "inherit"] })
  await waitFor(holder, /CLAIMED/)
  const taker = spawn(node, [here("./release.ts")], { env: { ...env, ROLE: "taker" }, stdio: ["ignore", "pipe", "inherit"] })
  await waitFor(taker, /READY/)
  const sent = Date.now()
  holder.kill("SIGTERM")
  const picked = Number((await waitFor(taker, /PICKED \d+/)).split(" ")[1])
  taker.kill("SIGTERM")
  await Promise.all([holder, taker].map((child) => new Promise((resolve) => child.exitCode !== null ? resolve(0) : child.once("exit", resolve))))
  return picked - sent
}

const main = async () => {
  installContenders()
  const baseline = extractBaseline()
  const pg = await startPostgres({ settings: { max_connections: "300" } })
  // Interrupted (Ctrl-C), the server goes too (on the way out, through the process's exit).
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130))
  const results: Record<string, Array<Measure>> = {}
  const add = (name: string, measure: Measure) => (results[name] ??= []).push(measure)
  let databases = 0
  const freshPg = () => {
    const name = `bench_${++databases}`
    pg.psql(`CREATE DATABASE ${name}`)
    return pg.url.replace(/\/postgres$/, `/${name}`)
  }
  const sqliteDir = `${tmp}jobs-sqlite`
  rmSync(sqliteDir, { recursive: true, force: true })
  mkdirSync(sqliteDir, { recursive: true })
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const pgContenders = ["jobqueue", "graphile-worker", "pg-boss"]
      for (const name of [...pgContenders.slice(round % 3), ...pgContenders.slice(0, round % 3)]) {
        const measure = await contender(name, freshPg(), N_PG)
        console.log(`round ${round + 1} PostgreSQL ${name}: ${JSON.stringify(measure)}`)
        add(`pg ${name}`, measure)
      }
      for (const name of round % 2 === 0 ? ["jobqueue", "jobqueue-main"] : ["jobqueue-main", "jobqueue"]) {
        const measure = await contender(name, `${sqliteDir}/${name}-${round}.db`, N_SQLITE)
        console.log(`round ${round + 1} SQLite ${name}: ${JSON.stringify(measure)}`)
        add(`sqlite ${name}`, measure)
      }
    }
    const pickups: Record<string, Array<number>> = { pg: [], sqlite: [] }
    for (let i = 0; i < PICKUPS; i++) {
      const database = freshPg()
      pickups["pg"]!.push(await pickup(database, () => contender("enqueue", database, 1).then(() => {}), {}))
      const file = `${sqliteDir}/pickup-${i}.db`
      pickups["sqlite"]!.push(await pickup(file, () => contender("enqueue", file, 1).then(() => {}), { POLL_MS: "100" }))
      console.log(`pickup ${i + 1}: PostgreSQL ${pickups["pg"]!.at(-1)} ms, SQLite ${pickups["sqlite"]!.at(-1)} ms`)
    }
    write(results, pickups, baseline)
  } finally {
    await pg.stop()
  }
}

const write = (results: Record<string, Array<Measure>>, pickups: Record<string, Array<number>>, baseline: string) => {
  const rate = (n: number, ms: number) => Math.round(n / (ms / 1000))
  const row = (key: string, n: number) => {
    const measures = results[key]!
    return {
      enqueue: rate(n, median(measures.map((m) => m.enqueueMs))),
      process: rate(n, median(measures.map((m) => m.processMs))),
      rounds: measures.map((m) => ({ enqueue: rate(n, m.enqueueMs), process: rate(n, m.processMs) }))
    }
  }
  const pg = Object.fromEntries(["jobqueue", "graphile-worker", "pg-boss"].map((name) => [name, row(`pg ${name}`, N_PG)]))
  const sqlite = Object.fromEntries(["jobqueue", "jobqueue-main"].map((name) => [name, row(`sqlite ${name}`, N_SQLITE)]))
  const machine = `${availableParallelism()} × ${cpus()[0]?.model.trim() ?? "unknown CPU"}, Node ${process.versions.node}, ${process.platform}`
  const postgres = execFileSync("sh", ["-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"], { encoding: "utf8" }).trim()
  const version = execFileSync(`${postgres}/postgres`, ["--version"], { encoding: "utf8" }).trim()
  const data = { date: new Date().toISOString(), machine, postgres: version, versions: VERSIONS, baseline, ROUNDS, N_PG, N_SQLITE, pg, sqlite, pickups }
  writeFileSync(here("./results.json"), JSON.stringify(data, null, 2) + "\n")
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`
  const ours = pg["jobqueue"]!
  const md = [
    "# bench:jobs",
    "",
    `Written by \`npm run bench:jobs\` on ${data.date.slice(0, 10)}; ${machine}; ${version} (default settings: fsync on).`,
    `Trivial jobs, one worker process of concurrency 10; enqueue in chunks of 500. Medians of ${ROUNDS} rounds (per-round figures in results.json).`,
    "",
    `## PostgreSQL: ${N_PG.toLocaleString("en")} jobs, the same server, a fresh database each`,
    "",
    "| contender | enqueue, jobs/s | process, jobs/s | process vs JobQueue |",
    "| --- | ---: | ---: | ---: |",
    ...Object.entries(pg).map(([name, r]) =>
      `| ${name === "jobqueue" ? "effect-graceful JobQueue" : `${name} ${VERSIONS[name as keyof typeof VERSIONS]}`} | ${r.enqueue} | ${r.process} | ${
        ratio(r.process, ours.process)
      } |`
    ),
    "",
    "graphile-worker: `run({ concurrency: 10 })`, jobs added with `addJobs`; pg-boss: `work({ batchSize: 10, burstWhenBatchFull: true })`,",
    "jobs added with `insert`; JobQueue: `layerWorker(..., { workers: 10 })` (claims as many as workers wait, up to 10, in one statement).",
    "",
    `## SQLite: ${N_SQLITE.toLocaleString("en")} jobs, a fresh file each (WAL, synchronous FULL)`,
    "",
    "| implementation | enqueue, jobs/s | process, jobs/s | process vs baseline |",
    "| --- | ---: | ---: | ---: |",
    `| JobQueue on SqlClient (this branch) | ${sqlite["jobqueue"]!.enqueue} | ${sqlite["jobqueue"]!.process} | ${
      ratio(sqlite["jobqueue"]!.process, sqlite["jobqueue-main"]!.process)
    } |`,
    `| JobQueue on node:sqlite (baseline ${baseline}) | ${sqlite["jobqueue-main"]!.enqueue} | ${sqlite["jobqueue-main"]!.process} | 1.00× |`,
    "",
    "## From SIGTERM to the pickup of a released job by another process",
    "",
    "A holder process runs a job that never ends; it gets SIGTERM (DRAIN_DELAY=0, DRAIN_TIMEOUT=100ms): the job is cut at the",
    "drain deadline and its claim given back as the queue closes; an idle taker process starts it. Wall clock, min / median / max",
    `of ${PICKUPS}:`,
    "",
    "| database | how the taker learns | SIGTERM → pickup, ms |",
    "| --- | --- | ---: |",
    `| PostgreSQL | NOTIFY from the release | ${spread(pickups["pg"]!)} |`,
    `| SQLite | its poll, every 100 ms | ${spread(pickups["sqlite"]!)} |`,
    "",
    "For comparison (issue 26, measured on this kind of machine): after a SIGKILL, graphile-worker gives a job back after 4 h,",
    "pg-boss after 15 min; JobQueue after its lease (30 s by default, JOBS_LEASE).",
    ""
  ]
  writeFileSync(here("./results.md"), md.join("\n"))
  console.log(md.join("\n"))
}

const spread = (values: ReadonlyArray<number>) =>
  `${Math.round(Math.min(...values))} / ${Math.round(median(values))} / ${Math.round(Math.max(...values))}`

if (!existsSync(tmp)) mkdirSync(tmp, { recursive: true })
await main()
