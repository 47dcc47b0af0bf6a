/**
 * The invariants of a shutdown, checked from the log and the report of one
 * run, numbered as in the issue:
 *
 * 1. the run ends by the shutdown deadline with the documented exit code;
 * 2. no unit is cut before the drain deadline (or its own shorter drain
 *    timeout from the end of the drain delay); every unit running at the
 *    drain deadline is cut then, or its group is named as timed out;
 * 3. a closer runs after everything built on it has closed, and never twice;
 * 4. every closer ran unless abandoned; every abandoned, failed or timed-out
 *    one is named in the report;
 * 5. not ready from the quit event on; a group's intake stops when its scope
 *    closes (its release begins), and never before the end of the drain delay;
 * 6. the library's count of units in flight, read at every step, is never
 *    negative and equals what the log shows; the report's numbers (in flight
 *    at the quit event, at the end, cut) equal what the log shows;
 * 7. a second signal ends the run at once with 128 + n (checked with 1);
 * 8. an automatic drain delay ends never before its minimum, never after its
 *    maximum, never while its evidence is missing, and at the first instant
 *    the evidence is there; the report says how it ended.
 *
 * Two parts have tags of their own, so that one can be told from the rest:
 * `[5-late]` is the half of 5 that says "when its release begins" (not later);
 * `[2-never-cut]` says
 * that a unit which heeds interruption has ended by the end of a graceful
 * shutdown, wherever and whenever it started.
 */
import { Duration } from "effect"
import type { Quit, Report } from "../../src/index.ts"
import type { Event } from "./interpret.ts"
import * as P from "./programs.ts"
import type { Run } from "./run.ts"

type Row = Report.Report["rows"][number]
type Fail = (tag: number | string, text: string) => void

/** What one run shows, read once for every check. */
interface Seen {
  readonly run: Run
  readonly report: Report.Report
  readonly d: Quit.Deadlines
  readonly log: ReadonlyArray<Event>
  readonly first: (what: Event["what"], name: string) => Event | undefined
  readonly index: (event: Event | undefined) => number
  readonly rows: ReadonlyMap<string, Row>
  readonly end: number
  readonly graceful: boolean
  /** The quit event came after the program was running (else: while starting). */
  readonly wasRunning: boolean
}

/** What broke, as `[tag] words`; empty when the run kept every invariant. */
export const check = (run: Run): ReadonlyArray<string> => {
  const broken: Array<string> = []
  const fail: Fail = (tag, text) => void broken.push(`[${tag}] ${text}`)
  const report = run.report
  if (report === undefined) {
    fail(1, `the run had not ended at ${run.endAt} (deadlines ${JSON.stringify(run.deadlines)})`)
    return broken
  }
  const log = run.rec.events.slice(0, run.eventsAtEnd)
  const first = (what: Event["what"], name: string) => log.find((e) => e.what === what && e.name === name)
  for (const name of run.rec.closes.keys()) {
    const ran = log.filter((e) => e.what === "ran" && e.name === name).length
    if (ran > 1) fail(3, `${name} ran ${ran} times`)
  }
  if (P.isRefused(run.program)) {
    refused(run, report, first, fail)
    return broken
  }
  const d = run.deadlines
  if (d === undefined) {
    fail(1, "no quit event fired")
    return broken
  }
  const wasRunning = run.history.some((p) => p.phase === "running")
  const stopAt = run.history.find((p) => p.phase === "stopping")?.at
  // An automatic drain delay applies when there is one: not when the quit event came while starting.
  const auto = run.program.routing !== null && d.stopping > d.fired
  const seen: Seen = {
    run,
    report,
    // With an automatic drain delay, its end is when phase `stopping` began;
    // the deadlines stay where the maximum puts them.
    d: auto && stopAt !== undefined ? { ...d, stopping: stopAt } : d,
    log,
    first,
    index: (e) => e === undefined ? -1 : log.indexOf(e),
    rows: new Map(report.rows.map((row) => [row.name, row])),
    end: run.endAt,
    graceful: report.ending === "graceful",
    wasRunning
  }
  for (const invariant of [ending, cuts, order, named, readiness, counts]) invariant(seen, fail)
  if (auto) automatic(seen, d, fail)
  return broken
}

/** A program refused at start ends `failed`, exit code 1, having closed what it had opened. */
const refused = (run: Run, report: Report.Report, first: Seen["first"], fail: Fail) => {
  if (report.ending !== "failed" || report.exitCode !== 1) {
    fail(1, `a refused program ended ${report.ending} with exit code ${report.exitCode}, not failed with 1`)
  }
  if (!run.errors.some((e) => e.startsWith("invalid configuration:"))) fail(1, "the refused option was not logged")
  for (const name of run.rec.closes.keys()) {
    if (first("registered", name) !== undefined && first("ran", name) === undefined) fail(4, `${name} never ran`)
  }
  for (const row of report.rows) if (row.outcome === "abandoned") fail(4, `${row.name} abandoned: ${row.detail}`)
}

// ---- 1. the end, and the exit code -------------------------------------------------------

const ending = ({ d, end, graceful, log, report, run, wasRunning }: Seen, fail: Fail) => {
  const o = run.options
  const delay = wasRunning ? Duration.toMillis(o.drainDelay) : 0
  // The deadlines as fixed at the quit event (an automatic drain delay's maximum as `stopping`).
  const at = run.deadlines ?? d
  const fixed = [at.stopping - at.fired, at.drain - at.stopping, at.close - at.drain, at.shutdown - at.fired]
  const wanted = [delay, Duration.toMillis(o.drainTimeout), Duration.toMillis(o.closeTimeout), Duration.toMillis(o.shutdownTimeout)]
  if (fixed.join() !== wanted.join()) fail(1, `deadlines ${JSON.stringify(at)} do not follow the options (${wanted.join(", ")})`)
  if (end > d.shutdown) fail(1, `ended at ${end}, after the shutdown deadline ${d.shutdown}`)
  if (report.totalMillis !== end - d.fired) fail(1, `totalMillis ${report.totalMillis}, but it ran ${end - d.fired} ms`)
  const failures = log.filter((e) => e.what === "ended" && run.rec.units.get(e.name)?.failsApp === true)
  if (report.reason === "SIGTERM" ? d.fired !== run.signalSent : !failures.some((e) => e.at === d.fired)) {
    fail(1, `the quit event fired at ${d.fired} for "${report.reason}"; the signal came at ${run.signalSent}`)
  }
  const hang = log.find((e) => e.what === "hang")
  const second = run.secondSent
  if (report.ending === "forced") {
    if (second !== end) fail(1, `forced at ${end}, but the second signal came at ${second}`)
    if (report.exitCode !== 128 + 15) fail(1, `forced by SIGTERM, exit code ${report.exitCode}`)
  } else if (second !== undefined && second < end) {
    fail(1, `the second signal at ${second} did not force the exit (ended ${report.ending} at ${end})`)
  }
  if (report.ending === "deadline") {
    if (end !== d.shutdown) fail(1, `ended by the deadline at ${end}, not at ${d.shutdown}`)
    if (hang === undefined) fail(1, "the shutdown deadline passed, though nothing outside the library hung")
    if (report.exitCode !== 1) fail(1, `the deadline passed, exit code ${report.exitCode}`)
  } else if (hang !== undefined && hang.at < end && report.ending !== "forced") {
    fail(1, `a finalizer hung since ${hang.at}, yet the run ended ${report.ending} at ${end}`)
  }
  if (report.ending === "completed" || report.ending === "failed") fail(1, `the program ended by itself (${report.ending})`)
  if (!graceful) return
  // The rows are checked against the log by invariant 4; a failure at the very end may or may not count.
  const byFailure = report.reason?.startsWith("failure:") === true || failures.some((e) => e.at < end)
  const tie = failures.some((e) => e.at === end)
  const bad = report.rows.filter((row) => row.outcome === "failed" || row.outcome === "timed out").map((row) => row.name)
  const expected = byFailure || bad.length > 0 ? 1 : 0
  if (report.exitCode !== expected && !(tie && report.exitCode === 1)) {
    fail(1, `exit code ${report.exitCode}, expected ${expected} (failure fired: ${byFailure}; failed or timed out: ${bad.join(", ") || "none"})`)
  }
}

// ---- 2. cuts ----------------------------------------------------------------------------

const cuts = ({ d, end, first, graceful, run }: Seen, fail: Fail) => {
  for (const [name, unit] of run.rec.units) {
    const started = first("started", name)
    if (started === undefined) continue
    const own = run.rec.owners.get(unit.owner)!.drainTimeout
    const lower = Math.min(d.drain, d.stopping + own)
    const cut = first("interrupted", name)
    if (cut !== undefined && cut.at < lower) fail(2, `${name} cut at ${cut.at}, before ${lower} (drain deadline ${d.drain})`)
    const naturalEnd = unit.millis === "never" ? Infinity : started.at + unit.millis
    if (!unit.ignoresInterrupt && started.at < d.drain && naturalEnd > d.drain && end >= d.drain) {
      if (cut === undefined) fail(2, `${name} was running at the drain deadline ${d.drain} and was not cut`)
      else if (cut.at > d.drain) fail(2, `${name} was running at the drain deadline ${d.drain} and was cut only at ${cut.at}`)
    }
    if (graceful && !unit.ignoresInterrupt && first("exit", name) === undefined) {
      fail("2-never-cut", `${name} (started ${started.at}) never ended nor was cut`)
    }
  }
}

// ---- 3. closing order ---------------------------------------------------------------------

const order = ({ d, first, index, run }: Seen, fail: Fail) => {
  for (const [name, info] of run.rec.closes) {
    const ran = first("ran", name)
    if (ran === undefined) continue
    if (info.kind === "stop func") {
      if (ran.at !== d.stopping) fail(3, `stop func ${name} ran at ${ran.at}, not at the end of the drain delay ${d.stopping}`)
      continue
    }
    if (ran.at < d.stopping) fail(3, `${name} ran at ${ran.at}, before the end of the drain delay ${d.stopping}`)
    for (const j of P.dependentsOf(run.program, info.component)) {
      if (first("building", `c${j}`) === undefined) continue
      const closed = first("closed", `c${j}`)
      if (closed === undefined || index(closed) > index(ran)) {
        fail(3, `${name} ran at ${ran.at}, before c${j} (built on it) had closed${closed === undefined ? "" : ` (at ${closed.at})`}`)
      }
    }
    // Within a component, its groups and workers were made after its closers: they drain first.
    for (const [owner, o] of run.rec.owners) {
      if (o.component !== info.component) continue
      const released = first("released", owner)
      if (released === undefined || index(released) > index(ran)) fail(3, `${name} ran at ${ran.at}, before ${owner} had drained`)
    }
  }
}

// ---- 4. the report names everything -------------------------------------------------------

const named = ({ first, graceful, log, rows, run }: Seen, fail: Fail) => {
  for (const [name, info] of run.rec.closes) {
    if (first("registered", name) === undefined) continue
    const row = rows.get(name)
    if (row === undefined) {
      fail(4, `${name} is missing from the report`)
      continue
    }
    const ran = first("ran", name)
    if (ran === undefined) {
      if (graceful) fail(4, `${info.kind} ${name} never ran, in a graceful shutdown (row: ${row.outcome}, ${row.detail})`)
      else if (row.outcome !== "abandoned") fail(4, `${name} never ran, yet its row says ${row.outcome}`)
      continue
    }
    const allowed = closeOutcomes(info.spec, first("done", name), ran, row, graceful)
    if (!allowed.includes(row.outcome)) fail(4, `${name} (${info.spec.behavior}) ${row.outcome}, expected ${allowed.join(" or ")}`)
  }
  for (const [name] of run.rec.owners) {
    const row = rows.get(name)
    if (row === undefined) continue
    if (graceful && row.outcome === "abandoned") fail(4, `${name} abandoned in a graceful shutdown: ${row.detail}`)
    const units = [...run.rec.units].filter(([, u]) => u.owner === name).map(([unit]) => unit)
    const allowed = ownerOutcomes(log, units, first("released", name), graceful)
    if (!allowed.includes(row.outcome)) fail(4, `${name} ${row.outcome}, expected ${allowed.join(" or ")} (${row.detail})`)
  }
}

/** The outcomes a closer or stop function that ran may have in the report. */
const closeOutcomes = (spec: P.Close, done: Event | undefined, ran: Event, row: Row, graceful: boolean): ReadonlyArray<Row["outcome"]> => {
  const open: ReadonlyArray<Row["outcome"]> = graceful ? [] : ["abandoned"]
  if (spec.behavior === "failing" || spec.behavior === "dying") return ["failed", ...open]
  if (done === undefined) return ["timed out", ...open]
  // Ending at the very instant it is abandoned: either.
  if (row.millis !== undefined && done.at === ran.at + row.millis) return ["done", "timed out"]
  return ["done"]
}

/** The outcomes a group or worker may have, from what its units did before its drain ended. */
const ownerOutcomes = (
  log: ReadonlyArray<Event>,
  units: ReadonlyArray<string>,
  released: Event | undefined,
  graceful: boolean
): ReadonlyArray<Row["outcome"]> => {
  if (released === undefined) return graceful ? ["done", "cut", "timed out", "failed"] : ["abandoned", "done", "cut", "timed out"]
  const exitOf = (name: string) => log.find((e) => e.what === "exit" && e.name === name)
  const started = units.filter((name) => log.some((e) => e.what === "started" && e.name === name))
  const late = started.filter((name) => (exitOf(name)?.at ?? Infinity) > released.at)
  const onTime = started.filter((name) => exitOf(name)?.at === released.at)
  const cut = started.some((name) => log.some((e) => e.what === "interrupted" && e.name === name && e.at <= released.at))
  const settled: Row["outcome"] = cut ? "cut" : "done"
  if (late.length > 0) return ["timed out"]
  // A unit that ends the very instant its group is abandoned: either, and a cut may be on record.
  if (onTime.length > 0) return ["timed out", "cut", settled]
  return [settled]
}

// ---- 5. readiness and intake ----------------------------------------------------------------

const readiness = ({ d, end, first, log, run, wasRunning }: Seen, fail: Fail) => {
  const phases = run.history.map((p) => `${p.phase}@${p.at}`).join(" ")
  const at = (phase: Quit.Phase) => run.history.find((p) => p.phase === phase)?.at
  const running = at("running")
  const built = log.filter((e) => e.what === "built").reduce((latest, e) => Math.max(latest, e.at), 0)
  if (at("draining") !== d.fired) fail(5, `phases ${phases}: draining does not begin at the quit event ${d.fired}`)
  if (running !== undefined && running > d.fired) fail(5, `phases ${phases}: running after the quit event`)
  if (running !== undefined && running !== built) fail(5, `phases ${phases}: running, but the last component was built at ${built}`)
  const stopping = at("stopping")
  if (stopping !== undefined && stopping !== d.stopping) fail(5, `phases ${phases}: stopping, but the drain delay ends at ${d.stopping}`)
  if (stopping === undefined && end > d.stopping) fail(5, `phases ${phases}: never stopping, though the drain delay ended at ${d.stopping}`)
  if (at("stopped") !== end) fail(5, `phases ${phases}: not stopped when the report came at ${end}`)
  for (const s of run.readiness) {
    const afterQuit = s.at > d.fired || (s.at === d.fired && s.afterSignal)
    if (afterQuit && s.ready) fail(5, `ready at ${s.at}, after the quit event at ${d.fired}`)
    if (running !== undefined && s.at > running && s.at < d.fired && !s.ready) fail(5, `not ready at ${s.at}, while running`)
  }
  for (const [name, o] of run.rec.owners) {
    if (o.kind === "worker") {
      // A worker stops taking at the quit event itself (`until: "quit"`).
      const late = log.find((e) => e.what === "started" && run.rec.units.get(e.name)?.owner === name && e.at > d.fired)
      if (late !== undefined) fail(5, `${late.name} started at ${late.at}, after the quit event at ${d.fired}`)
      continue
    }
    const stop = first("onStop", name)
    if (stop !== undefined && stop.at < d.stopping) fail(5, `${name}: onStop at ${stop.at}, before the end of the drain delay ${d.stopping}`)
    // A group's intake stops when its scope closes — the end of the drain
    // delay for a group nothing depends on, later for one that the layers
    // built on it still use until they are done — and never before the end of
    // the drain delay.
    const releasing = first("releasing", name)
    const due = releasing === undefined ? undefined : Math.max(d.stopping, releasing.at)
    if (wasRunning && due !== undefined && end > due && stop?.at !== due) {
      fail("5-late", `${name}: intake stopped ${stop === undefined ? "never" : `at ${stop.at}`}, not when its release began after the drain delay (${due})`)
    }
  }
}

// ---- 6. counts ----------------------------------------------------------------------------

const counts = ({ d, first, log, rows, run }: Seen, fail: Fail) => {
  const ownerOf = (e: Event) => run.rec.units.get(e.name)?.owner
  /** Units of `owner` in flight after the first `upTo` events (those after the report included). */
  const inFlightAt = (owner: string, upTo: number) => {
    let n = 0
    for (const e of run.rec.events.slice(0, upTo)) {
      if (ownerOf(e) !== owner) continue
      if (e.what === "started") n++
      if (e.what === "exit") n--
    }
    return n
  }
  /** The same at an instant, as a range: events at that very instant may fall either side. */
  const inFlightWhen = (owner: string, at: number) => {
    let lo = 0
    let hi = 0
    for (const e of log) {
      if (ownerOf(e) !== owner || e.at > at) continue
      const before = e.at < at
      if (e.what === "started") {
        hi++
        if (before) lo++
      }
      if (e.what === "exit") {
        lo--
        if (before) hi--
      }
    }
    return { lo, hi }
  }
  for (const sample of run.counts) {
    for (const [name, count] of sample.counts) {
      if (count < 0) fail(6, `${name}: ${count} in flight at ${sample.at}`)
      if (!run.rec.owners.has(name)) continue
      const seen = inFlightAt(name, sample.index)
      if (count !== seen) fail(6, `${name}: the library counted ${count} in flight at ${sample.at}, the log shows ${seen}`)
    }
  }
  for (const name of run.rec.owners.keys()) {
    const row = rows.get(name)
    if (row === undefined) continue
    const { inFlightAtDrain: atQuit, inFlightAtEnd: atEnd } = row
    if (atQuit === undefined || atEnd === undefined) {
      fail(6, `${name}: its row has no counts`)
      continue
    }
    if (atQuit < 0 || atEnd < 0) fail(6, `${name}: its row counts ${atQuit} → ${atEnd}`)
    const quit = inFlightWhen(name, d.fired)
    if (atQuit < quit.lo || atQuit > quit.hi) {
      fail(6, `${name}: the report says ${atQuit} in flight at the quit event (${d.fired}), the log shows ${quit.lo}–${quit.hi}`)
    }
    const releasing = first("releasing", name)
    if (releasing !== undefined && row.millis !== undefined) {
      // Its close began as its release did, and lasted `millis`.
      const closedAt = releasing.at + row.millis
      const end = inFlightWhen(name, closedAt)
      if (atEnd < end.lo || atEnd > end.hi) {
        fail(6, `${name}: the report says ${atEnd} in flight at its end (${closedAt}), the log shows ${end.lo}–${end.hi}`)
      }
    }
    if (row.outcome === "done" && atEnd !== 0) fail(6, `${name}: done with ${atEnd} still in flight`)
    const cut = /^(\d+) cut/.exec(row.detail ?? "")
    if (cut !== null) {
      // Cut: every unit interrupted (only a cut interrupts them), at most every unit in flight at the first cut or later.
      const lower = Math.min(d.drain, d.stopping + run.rec.owners.get(name)!.drainTimeout)
      const units = [...run.rec.units].filter(([, u]) => u.owner === name).map(([unit]) => unit)
      const lo = units.filter((unit) => first("interrupted", unit) !== undefined).length
      const hi = units.filter((unit) => {
        const exit = first("exit", unit)
        return first("started", unit) !== undefined && (exit === undefined || exit.at >= lower)
      }).length
      const said = Number(cut[1])
      if (said < lo || said > hi) fail(6, `${name}: the report says ${said} cut; the log shows ${lo} interrupted, ${hi} in flight at the cut (${lower}) or after`)
    }
  }
}

// ---- 8. an automatic drain delay -------------------------------------------------------------

const WINDOW = 60_000

/**
 * Whether the rule's evidence is there at `t`, from what the balancers did
 * up to `t` (before the listeners closed, if `beforeStop`): computed here from
 * the driver's own record, not from the library's.
 */
const evidenceAt = (run: Run, fired: number, t: number, beforeStop: boolean): boolean => {
  const routing = run.program.routing
  if (routing === null) return false
  const made = run.traffic.filter((x) => x.at <= t && (!beforeStop || !x.afterStop))
  const lastRequest = Math.max(fired, ...made.filter((x) => x.prober === null && x.afterFire).map((x) => x.at))
  if (t < lastRequest + routing.quiet) return false
  return routing.probers.every((_, i) => {
    const probes = made.filter((x) => x.prober === i)
    if (probes.filter((x) => x.at > t - WINDOW).length < 2) return true
    return probes.filter((x) => x.afterFire && x.status === 503).length >= routing.notReady
  })
}

const automatic = ({ end, report, run }: Seen, d: Quit.Deadlines, fail: Fail) => {
  const routing = run.program.routing
  if (routing === null) return
  const stop = run.history.find((p) => p.phase === "stopping")?.at
  if (stop === undefined) return // named by 5 if the run went past the maximum
  const min = d.fired + routing.min
  if (stop < min) fail(8, `the listeners closed at ${stop}, before the minimum ${min}`)
  if (stop > d.stopping) fail(8, `the listeners closed at ${stop}, after the maximum ${d.stopping}`)
  const held = evidenceAt(run, d.fired, stop, true)
  if (stop < d.stopping && !held) fail(8, `the listeners closed at ${stop}, before the maximum ${d.stopping}, with the evidence missing`)
  // The first instant: the minimum, a probe, the end of a quiet period, a prober leaving the window.
  const candidates = new Set([min, ...run.traffic.map((x) => x.at), ...run.traffic.map((x) => x.at + routing.quiet), ...run.traffic.map((x) => x.at + WINDOW)])
  // Woken by time, the rule lets the event loop turn before it looks: it closes at the first
  // instant the driver held the clock still from the moment the evidence was there.
  for (const t of candidates) {
    if (t < min || t >= stop || t > end || !evidenceAt(run, d.fired, t, false)) continue
    const held = run.stops.filter((s) => s >= t).reduce((a, b) => Math.min(a, b), Infinity)
    if (held < stop) {
      fail(8, `the evidence was there at ${t} and the clock held still at ${held}, but the listeners closed only at ${stop}`)
      break
    }
  }
  const said = report.drainDelay
  if (said === undefined) return fail(8, "the report does not say how the drain delay ended")
  if (said.millis !== stop - d.fired) fail(8, `the report says the drain delay lasted ${said.millis} ms; it lasted ${stop - d.fired}`)
  const by = held ? "evidence" : stop >= d.stopping ? "maximum" : "program"
  if (said.by !== by) fail(8, `the report says it ended by ${said.by}; the evidence ${held ? "was" : "was not"} there`)
}
