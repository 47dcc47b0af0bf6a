/**
 * The stop contract of a broker source under a real SIGTERM, the same for
 * every broker: consumer A (the example consumer, 2 workers, 3 prefetched)
 * holds all 5 messages of a queue — 2 in units, 3 fetched ahead — when a
 * second consumer B starts; A gets SIGTERM.
 *
 * - `finish`: A's units are shorter than the drain timeout: they finish and
 *   are acked by A; the 3 prefetched are handed back at once and B
 *   processes them while A's units still run.
 * - `cut`: A's units outlast the drain timeout: they are cut at the drain
 *   deadline and handed back; B processes all 5.
 *
 * The brokers' own timeouts for a message a consumer holds are set far
 * beyond the test (5 minutes), so B can only have them because A handed
 * them back. Every id is processed exactly once; A exits 0 with its report.
 */
import { assert } from "@effect/vitest"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import type { Broker } from "../support/brokers.ts"
import { type Kit, readResults } from "../support/brokerKits.ts"
import { tempDir } from "../support/temp.ts"
import { type Child, start } from "./harness.ts"

export const consumer = fileURLToPath(new URL("../../examples/consumer.ts", import.meta.url))
const BROKER_TIMEOUT_MS = 300_000

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

const reportRow = (output: string, name: string) =>
  new RegExp(`^\\s*${name.replace(/[/]/g, "\\/")}\\s+worker\\s+(\\S+)`, "m").exec(output)?.[1]

export interface Outcome {
  readonly a: Child
  readonly b: Child
}

export const redelivery = async (
  kit: Kit,
  broker: Broker,
  scenario: "finish" | "cut",
  children: Array<Child>
): Promise<void> => {
  const queue = `q${scenario}${Math.floor(Math.random() * 1e6)}`
  const db = join(tempDir(`broker-${kit.name}`), "results.db")
  const env = {
    BROKER_URL: broker.url,
    QUEUE: queue,
    RESULTS_DB: db,
    BROKER_TIMEOUT: `${BROKER_TIMEOUT_MS} millis`,
    LOG_UNITS: "1"
  }
  await kit.publish(broker.url, queue, [1, 2, 3, 4, 5], BROKER_TIMEOUT_MS)
  const a = start(consumer, {
    ...env,
    WORKERS: "2",
    PREFETCH: "3",
    // Long enough for B to start meanwhile, on a loaded machine too.
    JOB_MS: scenario === "finish" ? "10000" : "60000",
    DRAIN_TIMEOUT: scenario === "finish" ? "20 seconds" : "1 second"
  })
  children.push(a)
  await a.waitFor(/unit \d+ started[\s\S]*unit \d+ started/, 30_000)
  // A holds all five: two in units, three fetched ahead.
  await until("A to hold every message", async () => (await kit.waiting(broker.url, queue)) === 0)
  const b = start(consumer, { ...env, WORKERS: "8", JOB_MS: "1" })
  children.push(b)
  await b.waitFor(/READY/, 30_000)
  assert.strictEqual(readResults(db).length, 0, "nothing processed before the signal")
  a.signal("SIGTERM")
  // The prefetched ones reach B while A's units still run (finish) or before they are cut (cut).
  await until("B to process the 3 handed-back messages", () => readResults(db).filter((r) => r.pid === b.process.pid).length >= 3)
  const byBBeforeAExited = readResults(db).filter((r) => r.pid === b.process.pid).length
  const exitA = await a.exited(30_000)
  assert.strictEqual(exitA.code, 0, a.output())
  assert.isAtLeast(byBBeforeAExited, 3, "the prefetched messages were redelivered while A was still draining")
  assert.match(a.output(), /intake stopped; 3 prefetched messages handed back/, a.output())
  assert.strictEqual(reportRow(a.output(), kit.row(queue)), scenario === "finish" ? "done" : "cut", a.output())
  assert.match(a.output(), new RegExp(`closed; handed back 3 prefetched, ${scenario === "finish" ? 0 : 2} cut`))
  // A's hand-back came before its connection closed (its report is the last thing it writes).
  assert.isBelow(a.output().indexOf("intake stopped"), a.output().indexOf("shutdown report"))
  await until("B to process every message", () => new Set(readResults(db).map((r) => r.job)).size === 5)
  b.signal("SIGTERM")
  const exitB = await b.exited(30_000)
  assert.strictEqual(exitB.code, 0, b.output())
  const rows = readResults(db)
  assert.deepStrictEqual(rows.map((r) => r.job).sort(), [1, 2, 3, 4, 5], `each id exactly once: ${JSON.stringify(rows)}`)
  const byA = rows.filter((r) => r.pid === a.process.pid).length
  assert.strictEqual(byA, scenario === "finish" ? 2 : 0, "A's units finished (finish) or were cut (cut)")
  // Every acknowledgement reached the broker before the connections closed: nothing is left unacked.
  assert.strictEqual(await kit.unacked(broker.url, queue), 0, "acknowledged, all of them")
}
