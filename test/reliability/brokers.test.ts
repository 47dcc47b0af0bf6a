/**
 * Each broker source under chaos: two consumer processes (the example
 * consumer, 3 workers, 10 ms units) on one queue; every ~0.5 s one of them
 * gets SIGTERM or SIGKILL (each signal in turn for each process) and is
 * started again at once, while it drains — the older of the two, so each in
 * turn, once it runs (printed READY); every sixth kill, between two of those,
 * is of the younger one, just started: a kill in its start-up. Kills go on for SECONDS and until MESSAGES have been processed;
 * then the two left finish the queue.
 *
 * A process is killed once the runner handles its signals (the preload
 * fixtures/signalsInstalled.ts says when `Main.runMain` adds its SIGTERM
 * listener), never before: a SIGTERM before that gets Node's default action,
 * as a process that has acquired nothing.
 * Kills that land while the layers are built (importing the client,
 * connecting) are a supported moment: exit 0 with the report.
 *
 * Start-up is what bounds the cadence: run from its sources, the consumer
 * spends ~1 s of CPU before `Main.runMain` (Node's ESM loader resolving and
 * compiling ~450 modules: effect, the library, the client), ~35 % less with
 * Node's compile cache — two restarts a second would take both cores of this
 * machine. So the consumer runs as one bundle of the same sources (rolldown,
 * the broker's module a chunk of its own, loaded as the example imports it):
 * ~0.15 s of CPU to `Main.runMain`, ~0.25 s to READY. CHAOS_CONSUMER=source
 * runs examples/consumer.ts itself (with the compile cache) instead.
 *
 * The promise (docs/brokers.md):
 *
 * - 0 lost: every id processed at least once;
 * - 0 processed twice across a SIGTERM: a result written by a process that
 *   was never SIGKILLed is never followed by another result for the same id;
 * - duplicates only after a SIGKILL, within the documented window (a unit
 *   ended, its ack not yet at the broker): every result followed by another
 *   for its id was written by a SIGKILLed process, and no SIGKILL leaves
 *   more of them than the killed process had workers;
 * - every SIGTERM exits 0 with its report.
 *
 * The brokers' own timeouts for what a SIGKILLed consumer held are 2 s
 * (BullMQ lock and stalled check, JetStream AckWait; RabbitMQ requeues when
 * the connection drops), so that the others get it soon.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { loadavg } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "rolldown"
import { setTimeout as sleep } from "node:timers/promises"
import { consumer } from "../e2e/brokerScenario.ts"
import { type Child, start } from "../e2e/harness.ts"
import type { Broker } from "../support/brokers.ts"
import { amqp, bullmq, type Kit, nats, readResults, type Row } from "../support/brokerKits.ts"
import { tempDir } from "../support/temp.ts"
import { size } from "./support/mode.ts"
import { shutdownReport } from "./support/report.ts"
import { record, spread } from "./support/results.ts"

/** Processed while the kills go on, at least; four times as many are published, so that the queue outlasts them. */
const MESSAGES = size(300, 2_000)
const SECONDS = size(6, 20)
const MAX_CHAOS_MS = size(30_000, 90_000)
const WORKERS = 3
/** Written by the preload fixtures/signalsInstalled.ts as `Main.runMain` installs its signal handling. */
const INSTALLED = /chaos: SIGTERM listener installed/
const preload = fileURLToPath(new URL("./fixtures/signalsInstalled.ts", import.meta.url))
const bundled = process.env["CHAOS_CONSUMER"] !== "source"
/** What runs: the example consumer, bundled (or its source). */
let program = consumer
/** Node's compile cache for every consumer of the file, as a service restarted by its orchestrator would keep it. */
const compileCache = join(tempDir("chaos-compile-cache"), "cache")
beforeAll(async () => {
  if (bundled) {
    const dir = tempDir("chaos-bundle")
    await build({ input: consumer, platform: "node", logLevel: "warn", output: { dir, format: "esm", entryFileNames: "consumer.mjs" } })
    program = join(dir, "consumer.mjs")
  }
  // The cache filled before the chaos by one start that stops at its configuration (exit 1
  // once the program is loaded, the cache written as it exits); the client's module joins it
  // as the first consumers exit.
  const child = start(program, { NODE_COMPILE_CACHE: compileCache, BROKER_URL: "nats://127.0.0.1:1", DRAIN_TIMEOUT: "not a duration" })
  const exit = await child.exited(60_000)
  assert.strictEqual(exit.code, 1, child.output())
  assert.include(child.output(), "invalid configuration", child.output())
}, 120_000)
const children: Array<Child> = []
const brokers: Array<Broker> = []
afterAll(async () => {
  for (const child of children) child.process.kill("SIGKILL")
  for (const broker of brokers) await broker.stop()
}, 60_000)

interface Life {
  readonly pid: number
  readonly slot: number
  readonly signal: "SIGTERM" | "SIGKILL"
  /** Killed as the younger of the two, the moment it handled signals (else the older, once it ran). */
  readonly early: boolean
  /** Where the kill landed: the layers still being built (`starting`) or the program running. */
  readonly moment: "starting" | "running"
  /** From the process's spawn to the kill. */
  readonly lifeMs: number
  /** From its spawn to READY, if it got there. */
  readonly readyMs: number | undefined
  /** Results the process had written when it was killed. */
  readonly processed: number
  readonly code: number | null
  readonly elapsedMs: number
  /** SIGTERM: the report's ending and exit code. */
  readonly report?: { readonly ending: string; readonly exitCode: number }
}

/** One of the two consumers, as started. */
interface Slot {
  readonly index: number
  readonly child: Child
  readonly spawnedAt: number
  readyMs: number | undefined
}

const chaos = async (kit: Kit) => {
  const broker = await kit.start()
  brokers.push(broker)
  const queue = "chaos"
  const dir = tempDir(`chaos-${kit.name}`)
  const db = join(dir, "results.db")
  const env = {
    BROKER_URL: broker.url,
    QUEUE: queue,
    RESULTS_DB: db,
    WORKERS: String(WORKERS),
    JOB_MS: "10",
    DRAIN_TIMEOUT: "1 second",
    BROKER_TIMEOUT: "2 seconds",
    BULLMQ_MAX_STALLED: "1000",
    LOG_FORMAT: "json",
    NODE_COMPILE_CACHE: compileCache
  }
  const published = 4 * MESSAGES
  const ids = Array.from({ length: published }, (_, i) => i + 1)
  await kit.publish(broker.url, queue, ids, 2_000)
  const rows = () => readResults(db)
  const processed = () => new Set(rows().map((row) => row.job)).size
  const launch = (index: number): Slot => {
    const child = start(program, env, { execArgv: ["--import", preload] })
    children.push(child)
    const slot: Slot = { index, child, spawnedAt: performance.now(), readyMs: undefined }
    child.process.stdout!.on("data", () => {
      if (slot.readyMs === undefined && /READY/.test(child.output())) slot.readyMs = performance.now() - slot.spawnedAt
    })
    return slot
  }
  const slots: Array<Slot> = [launch(0), launch(1)]
  await Promise.all(slots.map((slot) => slot.child.waitFor(/READY/, 60_000)))
  const lives: Array<Life> = []
  const kill = async (slot: Slot, signal: Life["signal"], early: boolean) => {
    const child = slot.child
    const moment: Life["moment"] = /READY/.test(child.output()) ? "running" : "starting"
    const pid = child.process.pid!
    const done = rows().filter((row) => row.pid === pid).length
    const sentAt = child.signal(signal)
    const readyMs = slot.readyMs
    // Started again at once, as a supervisor replaces a stopping instance: it starts while this one drains.
    slots[slot.index] = launch(slot.index)
    const exit = await child.exited(30_000)
    const life = {
      pid,
      slot: slot.index,
      signal,
      early,
      moment,
      lifeMs: sentAt - slot.spawnedAt,
      readyMs,
      processed: done,
      code: exit.code,
      elapsedMs: exit.at - sentAt
    }
    if (signal === "SIGTERM") {
      assert.strictEqual(exit.code, 0, child.output())
      const report = shutdownReport(child.output())
      lives.push({ ...life, report: { ending: report.ending, exitCode: report.exitCode } })
    } else lives.push(life)
  }
  const began = performance.now()
  const loadBefore = loadavg()[0]!
  const pending: Array<Promise<void>> = []
  let next = began
  for (let turn = 0;; turn++) {
    const elapsed = performance.now() - began
    const count = processed()
    if ((elapsed >= SECONDS * 1000 && count >= MESSAGES) || count >= published || elapsed >= MAX_CHAOS_MS) break
    // Every ~0.5 s the older of the two — each in turn — once it runs. A machine too loaded to
    // start a process in time slows the kills down rather than turning every kill into one in
    // start-up. Every sixth kill, between two of those, is of the younger one, just started
    // again, the moment the runner handles its signals: a kill in its start-up.
    const early = turn % 6 === 5
    if (!early) {
      next += 400 + Math.random() * 200
      await sleep(Math.max(0, next - performance.now()))
    }
    const [older, younger] = [...slots].sort((a, b) => a.spawnedAt - b.spawnedAt) as [Slot, Slot]
    const slot = early ? younger : older
    await slot.child.waitFor(early ? INSTALLED : /READY/, 60_000)
    if (!early) next = Math.max(next, performance.now())
    pending.push(kill(slot, Math.floor(turn / 2) % 2 === 0 ? "SIGTERM" : "SIGKILL", early))
  }
  await Promise.all(pending)
  const chaosMs = performance.now() - began
  const loadAfter = loadavg()[0]!
  const processedInChaos = processed()
  // The two left finish the queue, what the last SIGKILLs held included once the broker gives it back.
  const end = performance.now() + 90_000
  while (processed() < published && performance.now() < end) await sleep(100)
  for (const slot of slots) {
    await slot.child.waitFor(/READY/, 60_000)
    slot.child.signal("SIGTERM")
    const exit = await slot.child.exited(30_000)
    assert.strictEqual(exit.code, 0, slot.child.output())
  }

  assert.strictEqual(await kit.unacked(broker.url, queue), 0, "every message acknowledged in the end")
  const all = rows()
  const byJob = new Map<number, Array<Row>>()
  for (const row of all) byJob.set(row.job, [...(byJob.get(row.job) ?? []), row])
  const lost = ids.filter((id) => !byJob.has(id))
  const killed = new Set(lives.filter((life) => life.signal === "SIGKILL").map((life) => life.pid))
  // Every result but the last of an id was followed by another: a duplicate, and whose.
  const followed = [...byJob.values()].flatMap((list) => list.slice(0, -1))
  const acrossSigterm = followed.filter((row) => !killed.has(row.pid))
  const perKill = [...killed].map((pid) => followed.filter((row) => row.pid === pid).length)
  const figures = { lost: lost.length, duplicates: followed.length, acrossSigterm: acrossSigterm.length, worstKill: Math.max(0, ...perKill) }
  assert.deepStrictEqual(
    [figures.lost, figures.acrossSigterm],
    [0, 0],
    `lost ${JSON.stringify(lost.slice(0, 20))}; processed twice across a SIGTERM ${JSON.stringify(acrossSigterm.slice(0, 20))}`
  )
  assert.isAtMost(figures.worstKill, WORKERS, "no SIGKILL leaves more duplicates than the units it ran")
  const bySignal = (signal: Life["signal"]) => lives.filter((life) => life.signal === signal)
  const sigterms = bySignal("SIGTERM")
  for (const life of sigterms) assert.deepStrictEqual([life.code, life.report?.exitCode], [0, 0], JSON.stringify(life))
  assert.isAtLeast(sigterms.length, size(3, 10), "SIGTERM again and again")
  assert.isAtLeast(bySignal("SIGKILL").length, size(3, 10), "SIGKILL again and again")
  const at = (moment: Life["moment"], signal: Life["signal"]) => lives.filter((life) => life.moment === moment && life.signal === signal).length
  const endings = new Map<string, number>()
  for (const life of sigterms) endings.set(life.report!.ending, (endings.get(life.report!.ending) ?? 0) + 1)
  const figuresOf = {
    family: "Brokers: two consumers, one killed every ~0.5 s",
    scenario: `${kit.name}${bundled ? "" : " (run from its sources)"}: ${lives.length} kills in ${(chaosMs / 1000).toFixed(1)} s, ${processedInChaos} of ${published} messages processed meanwhile`,
    trials: lives.length,
    requests: published,
    failures: figures.lost + figures.acrossSigterm,
    signalToExitMs: sigterms.map((life) => life.elapsedMs),
    exitCodes: lives.map((life) => life.code),
    notes: [
      `a kill every ${(chaosMs / lives.length / 1000).toFixed(2)} s on average: the older of the two every ${
        (chaosMs / lives.filter((life) => !life.early).length / 1000).toFixed(2)
      } s once it ran, and between those the one just started again; each process lived ${
        spread(lives.map((life) => life.lifeMs))
      } ms from its spawn to its kill, and was READY ${spread(lives.flatMap((life) => life.readyMs ?? []))} ms after its spawn (min / median / max)`,
      `the consumer: ${bundled ? "examples/consumer.ts bundled by rolldown (one file, the broker's module a chunk of its own)" : "examples/consumer.ts from its sources"}, Node's compile cache on; ${WORKERS} workers, 10 ms units, drain timeout 1 s`,
      `where the kills landed: during start-up (the runner handling signals, the layers not yet built: importing the client, connecting) ${at("starting", "SIGTERM")} SIGTERM and ${at("starting", "SIGKILL")} SIGKILL; while running ${at("running", "SIGTERM")} SIGTERM and ${at("running", "SIGKILL")} SIGKILL; results written per life before its kill ${spread(lives.map((life) => life.processed))}`,
      `every SIGTERM exit 0 with its report (${[...endings].map(([ending, n]) => `${ending} ×${n}`).join(", ")})`,
      `lost ${figures.lost}; processed twice across a SIGTERM ${figures.acrossSigterm}`,
      `processed twice after a SIGKILL: ${figures.duplicates} in all, per SIGKILL ${spread(perKill)} (min / median / max; bound: ${WORKERS} workers)`,
      `results written: ${all.length} for ${published} messages`,
      `the machine's load average (1 min) as the kills began and ended: ${loadBefore.toFixed(1)} and ${loadAfter.toFixed(1)} (2 cores, shared with other work)`
    ]
  }
  if (process.env["CHAOS_LOG"] !== undefined) {
    console.log(figuresOf.scenario, "SIGTERM → exit", spread(figuresOf.signalToExitMs), "\n" + figuresOf.notes.join("\n"))
    console.log(lives.map((life) => `${life.slot}${life.signal === "SIGTERM" ? "T" : "K"} ${life.moment[0]} ${Math.round(life.lifeMs)} ${Math.round(life.elapsedMs)}`).join(" | "))
  }
  record(figuresOf)
  return figures
}

describe("broker consumers: two processes, one killed every ~0.5 s (each in turn, SIGTERM and SIGKILL in turn)", () => {
  it(`BullMQ: 0 lost, duplicates only after SIGKILL`, () => chaos(bullmq), 300_000)
  it(`AMQP: 0 lost, duplicates only after SIGKILL`, () => chaos(amqp), 300_000)
  it(`NATS: 0 lost, duplicates only after SIGKILL`, () => chaos(nats), 300_000)
})
