/**
 * Each broker source under chaos: two consumer processes (the example
 * consumer) on one queue of 2,000 messages (300 in `npm test`); one runs
 * throughout (3 workers), the other (2 workers) is killed after 0.2–0.6 s of
 * work — SIGTERM and
 * SIGKILL in turn — and started again, for ~20 s, until every message has
 * been processed; a last consumer then takes what the last kills left.
 *
 * The promise (docs/brokers.md):
 *
 * - 0 lost: every id processed at least once;
 * - 0 processed twice across a SIGTERM: a result written by a process that
 *   then got SIGTERM, or by the consumer that was never killed, is never
 *   followed by another result for the same id;
 * - duplicates only after a SIGKILL, within the documented window (a unit
 *   ended, its ack not yet at the broker): every result followed by another
 *   for its id was written by a SIGKILLed process, and no SIGKILL leaves
 *   more of them than the killed process had workers;
 * - every SIGTERM exits 0.
 *
 * The brokers' own timeouts for what a SIGKILLed consumer held are 2 s
 * (BullMQ lock and stalled check, JetStream AckWait; RabbitMQ requeues when
 * the connection drops) so that the last consumer gets it soon.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { consumer } from "../e2e/brokerScenario.ts"
import { type Child, start } from "../e2e/harness.ts"
import type { Broker } from "../support/brokers.ts"
import { amqp, bullmq, type Kit, nats, readResults, type Row } from "../support/brokerKits.ts"
import { tempDir } from "../support/temp.ts"
import { size } from "./support/mode.ts"
import { record, spread } from "./support/results.ts"

const MESSAGES = size(300, 2_000)
const MAX_CHAOS_MS = size(15_000, 60_000)
const KILLED_WORKERS = 2
const children: Array<Child> = []
const brokers: Array<Broker> = []
afterAll(async () => {
  for (const child of children) child.process.kill("SIGKILL")
  for (const broker of brokers) await broker.stop()
}, 60_000)

interface Life {
  readonly pid: number
  readonly signal: "SIGTERM" | "SIGKILL"
  readonly code: number | null
  readonly elapsedMs: number
}

const chaos = async (kit: Kit) => {
  const broker = await kit.start()
  brokers.push(broker)
  const queue = "chaos"
  const db = join(tempDir(`chaos-${kit.name}`), "results.db")
  const env = {
    BROKER_URL: broker.url,
    QUEUE: queue,
    RESULTS_DB: db,
    // About 70 messages/s in all (40 in `npm test`): the chaos lasts ~25 s (~7 s).
    JOB_MS: String(size(100, 60)),
    DRAIN_TIMEOUT: "1 second",
    BROKER_TIMEOUT: "2 seconds",
    BULLMQ_MAX_STALLED: "1000"
  }
  const ids = Array.from({ length: MESSAGES }, (_, i) => i + 1)
  await kit.publish(broker.url, queue, ids, 2_000)
  const processed = () => new Set(readResults(db).map((row) => row.job)).size
  const run = (workers: number) => {
    const child = start(consumer, { ...env, WORKERS: String(workers) })
    children.push(child)
    return child
  }
  const steady = run(3)
  await steady.waitFor(/READY/, 60_000)
  const lives: Array<Life> = []
  const began = performance.now()
  while (processed() < MESSAGES && performance.now() - began < MAX_CHAOS_MS) {
    const signal = lives.length % 2 === 0 ? "SIGTERM" : "SIGKILL"
    const child = run(KILLED_WORKERS)
    await child.waitFor(/READY/, 60_000)
    await sleep(200 + Math.random() * 400)
    const sentAt = child.signal(signal)
    const exit = await child.exited(30_000)
    if (signal === "SIGTERM") assert.strictEqual(exit.code, 0, child.output())
    lives.push({ pid: child.process.pid!, signal, code: exit.code, elapsedMs: exit.at - sentAt })
  }
  const chaosMs = performance.now() - began
  // What the last SIGKILL left comes back after the broker's own timeout: a last consumer takes it.
  const last = run(4)
  await last.waitFor(/READY/, 60_000)
  const end = performance.now() + 60_000
  while (processed() < MESSAGES && performance.now() < end) await sleep(100)
  for (const child of [steady, last]) {
    child.signal("SIGTERM")
    const exit = await child.exited(30_000)
    assert.strictEqual(exit.code, 0, child.output())
  }

  assert.strictEqual(await kit.unacked(broker.url, queue), 0, "every message acknowledged in the end")
  const rows = readResults(db)
  const byJob = new Map<number, Array<Row>>()
  for (const row of rows) byJob.set(row.job, [...(byJob.get(row.job) ?? []), row])
  const lost = ids.filter((id) => !byJob.has(id))
  const killed = new Set(lives.filter((life) => life.signal === "SIGKILL").map((life) => life.pid))
  // Every result but the last of an id was followed by another: a duplicate, and whose.
  const followed = [...byJob.values()].flatMap((list) => list.slice(0, -1))
  const acrossSigterm = followed.filter((row) => !killed.has(row.pid))
  const perKill = [...killed].map((pid) => followed.filter((row) => row.pid === pid).length)
  const figures = {
    lost: lost.length,
    duplicates: followed.length,
    acrossSigterm: acrossSigterm.length,
    worstKill: Math.max(0, ...perKill)
  }
  assert.deepStrictEqual(
    [figures.lost, figures.acrossSigterm],
    [0, 0],
    `lost ${JSON.stringify(lost.slice(0, 20))}; processed twice across a SIGTERM ${JSON.stringify(acrossSigterm.slice(0, 20))}`
  )
  assert.isAtMost(figures.worstKill, KILLED_WORKERS, "no SIGKILL leaves more duplicates than the units it ran")
  assert.isAtLeast(lives.length, size(4, 10), "the consumer was killed again and again")
  const bySignal = (signal: Life["signal"]) => lives.filter((life) => life.signal === signal)
  record({
    family: "Brokers: a consumer killed again and again",
    scenario: `${kit.name}: ${MESSAGES} messages, ${lives.length} kills (SIGTERM and SIGKILL in turn) in ${(chaosMs / 1000).toFixed(1)} s`,
    trials: lives.length,
    requests: MESSAGES,
    failures: figures.lost + figures.acrossSigterm,
    signalToExitMs: bySignal("SIGTERM").map((life) => life.elapsedMs),
    exitCodes: lives.map((life) => life.code),
    notes: [
      `lost ${figures.lost}; processed twice across a SIGTERM ${figures.acrossSigterm}`,
      `processed twice after a SIGKILL: ${figures.duplicates} in all, per SIGKILL ${spread(perKill)} (min / median / max; bound: ${KILLED_WORKERS} workers)`,
      `results written: ${rows.length} for ${MESSAGES} messages`,
      `a kill every ${(chaosMs / lives.length / 1000).toFixed(1)} s on average: each life is the consumer's start-up (Node loading the program, connecting) and 0.2–0.6 s of work`
    ]
  })
  return figures
}

describe("broker consumers killed again and again (after 0.2–0.6 s of work each life)", () => {
  it(`BullMQ: ${MESSAGES} messages, 0 lost, duplicates only after SIGKILL`, () => chaos(bullmq), 300_000)
  it(`AMQP: ${MESSAGES} messages, 0 lost, duplicates only after SIGKILL`, () => chaos(amqp), 300_000)
  it(`NATS: ${MESSAGES} messages, 0 lost, duplicates only after SIGKILL`, () => chaos(nats), 300_000)
})
