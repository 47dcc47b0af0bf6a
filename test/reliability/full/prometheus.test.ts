/**
 * The shutdown as a real Prometheus (Debian's `prometheus` package) sees it:
 * the example service serves /metrics on its health port (HEALTH_PORT), which
 * stays open through the whole shutdown; Prometheus scrapes it every 500 ms.
 * Once Prometheus has scraped the target up and seen a long request
 * (`GET /work?ms=12000`) in flight, the service gets SIGTERM: DRAIN_DELAY=4s
 * of `draining`, then `stopping` until the request completes.
 *
 * The promise, read back from Prometheus's HTTP API (the raw samples of each
 * series, by the timestamps of their scrapes): every scrape has exactly one
 * phase at 1; Prometheus recorded `running`, `draining` and `stopping`, in
 * that order and never back; `effect_graceful_in_flight{group="api"}` was 1
 * in a scrape of each of those phases; `effect_graceful_since_quit_seconds`
 * was 0 in every `running` scrape and, after it, above 0 and growing. The
 * service exits 0, every row `done`, and the request completes with 200.
 * Orders and values only: times are recorded, never bounded.
 *
 * Full suite only (`npm run test:reliability`, whose setup installs
 * Prometheus): without it this fails, it is not skipped.
 */
import { assert, describe, it } from "@effect/vitest"
import { get } from "../../support/http.ts"
import { lab } from "../support/lab.ts"
import { type Prometheus, type Series, startPrometheus } from "../support/prometheus.ts"
import { outcomes, shutdownReport } from "../support/report.ts"
import { record } from "../support/results.ts"

const { defer, service, tempDir } = lab()
const JOB = "service"
const INTERVAL_MS = 500
const DRAIN_DELAY = "4s"
const SHUTDOWN_TIMEOUT = "30s"
/** Long enough for several scrapes in each of `draining` (the drain delay) and `stopping` (the rest of it). */
const WORK_MS = 12_000
/** Wider than the whole test: every sample Prometheus took. */
const WINDOW = "15m"
const PHASES = ["starting", "running", "draining", "stopping", "stopped"] as const
type Phase = (typeof PHASES)[number]

/** One scrape, by its timestamp: the phase at 1 (every one at 1, to check there is one), and the other series. */
interface Scrape {
  readonly at: number
  readonly phases: ReadonlyArray<Phase>
  readonly inFlightApi: number | undefined
  readonly sinceQuit: number | undefined
}

const byTimestamp = (series: ReadonlyArray<Series>): Map<number, number> => {
  const values = new Map<number, number>()
  for (const { samples } of series) for (const [at, value] of samples) values.set(Math.round(at * 1000), value)
  return values
}

const scrapes = async (prometheus: Prometheus): Promise<ReadonlyArray<Scrape>> => {
  const phases = await prometheus.query(`effect_graceful_phase{job="${JOB}"}[${WINDOW}]`)
  const inFlight = byTimestamp(await prometheus.query(`effect_graceful_in_flight{job="${JOB}",group="api"}[${WINDOW}]`))
  const sinceQuit = byTimestamp(await prometheus.query(`effect_graceful_since_quit_seconds{job="${JOB}"}[${WINDOW}]`))
  const atOne = new Map<number, Array<Phase>>()
  for (const { metric, samples } of phases) {
    const phase = PHASES.find((name) => name === metric["phase"])
    if (phase === undefined) throw new Error(`a phase the test does not know: ${JSON.stringify(metric)}`)
    for (const [at, value] of samples) {
      const ms = Math.round(at * 1000)
      const list = atOne.get(ms) ?? []
      if (value === 1) list.push(phase)
      atOne.set(ms, list)
    }
  }
  return [...atOne].sort(([a], [b]) => a - b).map(([at, list]) => ({
    at,
    phases: list,
    inFlightApi: inFlight.get(at),
    sinceQuit: sinceQuit.get(at)
  }))
}

describe("Prometheus scraping a shutdown", () => {
  const title = `SIGTERM with a ${WORK_MS / 1000} s request in flight, DRAIN_DELAY=${DRAIN_DELAY}, ` +
    `scraped every ${INTERVAL_MS} ms: running, draining, stopping in order`
  it(title, async () => {
    const child = service({ HEALTH_PORT: "0", DRAIN_DELAY, SHUTDOWN_TIMEOUT })
    const ports = await child.listening()
    const health = Number(/example service listening: .* health=(\d+)/.exec(child.output())?.[1])
    assert.isAbove(health, 0, child.output())

    const startedAt = performance.now()
    const target = `127.0.0.1:${health}`
    const prometheus = await startPrometheus(tempDir(), { job: JOB, target, intervalMs: INTERVAL_MS }, defer)
    const readyAt = performance.now()
    const upAt = await prometheus.waitFor(`up{job="${JOB}"} == 1`)

    const sentAt = performance.now()
    const reply = get(ports.api, `/work?ms=${WORK_MS}`)
    // Prometheus has a scrape of the request in flight, phase `running`, before the SIGTERM.
    const seenAt = await prometheus.waitFor(`effect_graceful_in_flight{job="${JOB}",group="api"} == 1`)
    const stopped = await child.stop("SIGTERM")
    const answered = await reply
    // The health port closed once the shutdown ended: a failed scrape, after which nothing more comes.
    await prometheus.waitFor(`up{job="${JOB}"} == 0`)
    const seen = await scrapes(prometheus)
    const up = byTimestamp(await prometheus.query(`up{job="${JOB}"}[${WINDOW}]`))

    const output = child.output()
    const report = shutdownReport(output)
    const inPhase = (phase: Phase) => seen.filter((scrape) => scrape.phases.length === 1 && scrape.phases[0] === phase)
    const count = (phase: Phase) => inPhase(phase).length
    const withRequest = (phase: Phase) => inPhase(phase).filter((scrape) => scrape.inFlightApi === 1).length
    const afterQuit = seen.filter((scrape) => scrape.phases.some((phase) => PHASES.indexOf(phase) >= PHASES.indexOf("draining")))
    const sinceQuit = afterQuit.map((scrape) => scrape.sinceQuit ?? Number.NaN)
    const ups = [...up.values()]
    const ok = ups.filter((value) => value === 1).length
    const lastSinceQuit = Math.max(0, ...sinceQuit.filter(Number.isFinite))
    record({
      family: "Prometheus",
      scenario: `SIGTERM with GET /work?ms=${WORK_MS} in flight, DRAIN_DELAY=${DRAIN_DELAY}, scraped every ${INTERVAL_MS} ms`,
      trials: 1,
      requests: 1,
      failures: answered.status === 200 ? 0 : 1,
      signalToExitMs: [stopped.elapsedMs],
      exitCodes: [stopped.code],
      notes: [
        `${prometheus.version}, scrape_interval ${INTERVAL_MS}ms, target the health port's /metrics: ` +
        `${ok} scrapes up, ${ups.length - ok} failed (after the exit)`,
        `scrapes per phase: ${PHASES.map((phase) => `${phase} ${count(phase)}`).join(", ")}; ` +
        `with effect_graceful_in_flight{group="api"} 1: running ${withRequest("running")}, ` +
        `draining ${withRequest("draining")}, stopping ${withRequest("stopping")}`,
        `effect_graceful_since_quit_seconds up to ${lastSinceQuit.toFixed(3)} s in the last scrape; ` +
        `the request answered ${answered.status ?? answered.error} after ${Math.round(answered.at - sentAt)} ms`,
        `Prometheus ready ${Math.round(readyAt - startedAt)} ms after its start, ` +
        `target up ${Math.round(upAt - readyAt)} ms later (its discovery hands targets on every 5 s); ` +
        `the request seen in flight ${Math.round(seenAt - sentAt)} ms after it was sent, then the SIGTERM`
      ]
    })

    assert.strictEqual(stopped.code, 0, output)
    assert.deepStrictEqual([report.ending, report.exitCode], ["graceful", 0], output)
    assert.deepStrictEqual(outcomes(report).filter((row) => !row.endsWith(": done")), [], output)
    assert.strictEqual(report.rows.find((row) => row.name === "api")?.inFlightAtDrain, 1, output)
    assert.strictEqual(answered.status, 200, JSON.stringify(answered))
    assert.strictEqual(answered.body, `worked ${WORK_MS} ms\n`)

    const timeline = seen.map((scrape) =>
      `${scrape.at} ${scrape.phases.join("+") || "none"} in-flight=${scrape.inFlightApi} since-quit=${scrape.sinceQuit}`
    ).join("\n")
    // Each scrape: one phase at 1, the others at 0.
    assert.deepStrictEqual(seen.filter((scrape) => scrape.phases.length !== 1), [], timeline)
    // Prometheus saw each of the three, in that order and never back.
    for (const phase of ["running", "draining", "stopping"] as const) {
      assert.isAbove(count(phase), 0, `no ${phase} scrape:\n${timeline}`)
    }
    const order = seen.map((scrape) => PHASES.indexOf(scrape.phases[0]!))
    assert.deepStrictEqual(order, [...order].sort((a, b) => a - b), timeline)
    assert.isBelow(inPhase("running").at(-1)!.at, inPhase("draining")[0]!.at, timeline)
    assert.isBelow(inPhase("draining").at(-1)!.at, inPhase("stopping")[0]!.at, timeline)
    // The request in flight through the drain, as the report's inFlightAtDrain says.
    for (const phase of ["running", "draining", "stopping"] as const) {
      assert.isAbove(withRequest(phase), 0, `no ${phase} scrape with the request in flight:\n${timeline}`)
    }
    // Time since the quit event: 0 before it, then above 0 and growing from scrape to scrape.
    assert.deepStrictEqual(inPhase("running").map((scrape) => scrape.sinceQuit), inPhase("running").map(() => 0), timeline)
    assert.isAbove(sinceQuit[0]!, 0, timeline)
    sinceQuit.slice(1).forEach((value, i) => assert.isAbove(value, sinceQuit[i]!, timeline))
    // The last sample of up is the failed scrape after the exit.
    assert.strictEqual(ups.at(-1), 0, timeline)
  }, 120_000)
})
