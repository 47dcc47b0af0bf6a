/**
 * Runs one program under `Shutdown.run(Shutdown.launch(layer))` on a quit
 * event made as `Main.runMain` makes it (`Quit.make`, phase `starting`), with
 * the TestClock driven in steps: the signal at its moment, the second signal
 * after it, and steps until the run ends (or clearly will not).
 */
import { Cause, Duration, Effect, Logger, Option } from "effect"
import { TestClock } from "effect/testing"
import { Health, type Options, Quit, type Report, Shutdown } from "../../src/index.ts"
import { current, impl as implOf } from "../support/quit.ts"
import { app, Recorder } from "./interpret.ts"
import * as P from "./programs.ts"

export interface Run {
  readonly program: P.Program
  readonly options: Options.Options
  readonly rec: Recorder
  /** Undefined: the run had not ended when the driver gave up. */
  readonly report: Report.Report | undefined
  /** The clock when the report was returned (or when the driver gave up). */
  readonly endAt: number
  /** How many events the log held when the report was returned: later ones are ignored. */
  readonly eventsAtEnd: number
  readonly history: ReadonlyArray<Quit.PhaseChange>
  readonly deadlines: Quit.Deadlines | undefined
  /** `Health.isReady`, read after every step (and right after the signal). */
  readonly readiness: ReadonlyArray<{ readonly at: number; readonly ready: boolean; readonly afterSignal: boolean }>
  /** The library's own in-flight count of every group and worker, read with readiness; `index`: the log's length then. */
  readonly counts: ReadonlyArray<{ readonly at: number; readonly index: number; readonly counts: ReadonlyMap<string, number> }>
  readonly signalSent: number | undefined
  readonly secondSent: number | undefined
  readonly errors: ReadonlyArray<string>
  /** With an automatic drain delay: every probe made (its status), every request routed, and whether the listeners had closed. */
  readonly traffic: ReadonlyArray<Traffic>
  /** Every instant the driver stopped the clock at (and let the event loop turn). */
  readonly stops: ReadonlyArray<number>
}

/** One probe or request of the balancers, as the driver made it. */
export interface Traffic {
  readonly at: number
  /** The prober's index; null: a request. */
  readonly prober: number | null
  readonly status: number
  /** The quit event had fired. */
  readonly afterFire: boolean
  /** Phase `stopping` had begun (the listeners had closed). */
  readonly afterStop: boolean
}

export const input = (t: P.Timings, routing: P.Routing | null = null): Options.Input => ({
  shutdownTimeout: t.shutdownTimeout,
  drainDelay: routing === null
    ? t.drainDelay
    : { auto: { min: routing.min, max: t.drainDelay, notReady: routing.notReady, quiet: routing.quiet } },
  ...(t.drainTimeout === null ? {} : { drainTimeout: t.drainTimeout }),
  ...(t.closeTimeout === null ? {} : { closeTimeout: t.closeTimeout })
})

const now = Effect.clockWith((clock) => Effect.sync(() => clock.currentTimeMillisUnsafe()))

/** Runs `program`; never fails (a refused option shows in the report). */
export const simulate = (program: P.Program): Effect.Effect<Run> => {
  const errors: Array<string> = []
  const logger = Logger.make((options) => {
    if (options.logLevel !== "Error") return
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    errors.push(parts.map((part) => typeof part === "string" ? part : String(part)).join(" "))
  })
  return Effect.gen(function*() {
    const quit = yield* Effect.orDie(Quit.make(input(program.timings, program.routing), { phase: "starting" }))
    const options = implOf(quit).options
    const rec = new Recorder()
    const shutdown = Duration.toMillis(options.shutdownTimeout)
    const items = program.components.reduce((n, c) => n + c.closers.length + c.groups.length + c.workers.length + 1, 0)
    const startup = program.components.reduce((n, c) => n + c.startup, 0)
    // A refused program has no deadline: its release is bounded by the timeouts of what it holds.
    const giveUpAt = startup + (program.signalAt ?? 0) + (items + 2) * shutdown
    const step = Math.max(1, Math.floor(shutdown / 16))

    return yield* Effect.gen(function*() {
      const impl = yield* current
      const quitImpl = impl
      let report: Report.Report | undefined
      let endAt = 0
      let eventsAtEnd = 0
      const running = yield* Effect.forkChild(
        Shutdown.run(Shutdown.launch(app(program, options, rec))).pipe(Effect.tap((r) =>
          Effect.map(now, (t) => {
            report = r
            endAt = t
            eventsAtEnd = rec.events.length
          })
        )),
        { startImmediately: true }
      )
      let signalSent: number | undefined
      let secondSent: number | undefined
      const readiness: Array<{ at: number; ready: boolean; afterSignal: boolean }> = []
      const counts: Array<{ at: number; index: number; counts: ReadonlyMap<string, number> }> = []
      const sample = Effect.flatMap(
        Effect.zip(now, Health.isReady),
        ([at, ready]) =>
          Effect.sync(() => {
            readiness.push({ at, ready, afterSignal: signalSent !== undefined })
            const seen = new Map<string, number>()
            for (const entry of quitImpl.registry.counted()) seen.set(entry.name, entry.inFlight.count)
            counts.push({ at, index: rec.events.length, counts: seen })
          })
      )
      const traffic: Array<Traffic> = []
      const stops: Array<number> = []
      const probe = yield* Health.handler()
      const routing = program.routing
      // The instants at which the balancers probe or route a request, from `t` on.
      const nextTraffic = (t: number): number => {
        if (routing === null) return Infinity
        let next = Infinity
        for (const p of routing.probers) {
          const until = p.silentAfter === null || signalSent === undefined ? Infinity : signalSent + p.silentAfter
          const k = Math.max(0, Math.ceil((t - p.from) / p.every))
          const at = p.from + k * p.every
          if (at <= until) next = Math.min(next, at)
        }
        if (signalSent !== undefined) for (const r of routing.requests) if (signalSent + r >= t) next = Math.min(next, signalSent + r)
        // The instants at which the rule wakes by time: the clock stops there while the event loop turns.
        const fired = quitImpl.deadlines?.fired
        if (fired !== undefined) {
          const wakes = [fired + routing.min, ...traffic.filter((x) => x.prober === null).map((x) => x.at + routing.quiet)]
          for (const at of wakes) if (at >= t) next = Math.min(next, at)
          if (fired >= t) next = Math.min(next, fired + routing.quiet)
          if (t <= fired + routing.quiet) next = Math.min(next, fired + routing.quiet)
        }
        return next
      }
      // What is due at `t` and not made yet: requests first, then probes, in one go.
      const made = new Set<string>()
      const drive = (t: number) =>
        Effect.sync(() => {
          if (routing === null) return
          const state = () => ({ afterFire: quitImpl.hasFired(), afterStop: quitImpl.isAtLeast("stopping") })
          const sent = signalSent
          if (sent !== undefined) {
            routing.requests.forEach((r, i) => {
              if (sent + r !== t || made.has(`r${i}`)) return
              made.add(`r${i}`)
              quitImpl.routing.request(t)
              traffic.push({ at: t, prober: null, status: 200, ...state() })
            })
          }
          routing.probers.forEach((p, i) => {
            const until = p.silentAfter === null || sent === undefined ? Infinity : sent + p.silentAfter
            if (t < p.from || (t - p.from) % p.every !== 0 || t > until || made.has(`p${i}@${t}`)) return
            made.add(`p${i}@${t}`)
            const before = state()
            let status = 0
            probe({ method: "GET", url: "/readyz", headers: { "user-agent": `prober ${i}` }, socket: { remoteAddress: "10.0.0.1" } }, {
              set statusCode(code: number) {
                status = code
              },
              get statusCode() {
                return status
              },
              setHeader: () => undefined,
              end: () => undefined
            })
            traffic.push({ at: t, prober: i, status, ...before })
          })
        })
      // Turns of the event loop too: an automatic drain delay, woken by time, reads the I/O first.
      const turn = Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      const settle = Effect.gen(function*() {
        if (routing !== null) for (let i = 0; i < 6; i++) yield* turn
        for (let i = 0; i < 5 && running.pollUnsafe() === undefined; i++) yield* Effect.yieldNow
      })
      yield* sample
      while (running.pollUnsafe() === undefined) {
        const t = yield* now
        const fired = impl.deadlines?.fired
        const secondAt = program.secondAfter === null || fired === undefined
          ? Infinity
          : fired + Math.max(1, Math.floor((program.secondAfter * shutdown) / 1000))
        const limit = fired === undefined ? giveUpAt : Math.min(giveUpAt, fired + shutdown)
        if (t > limit) break
        const targets = [t + step, limit + 1, nextTraffic(t + 1)]
        if (program.signalAt !== null && signalSent === undefined) targets.push(program.signalAt)
        if (secondSent === undefined) targets.push(secondAt)
        const next = Math.max(t, Math.min(...targets))
        stops.push(next)
        if (next > t) yield* TestClock.adjust(next - t)
        yield* settle
        yield* sample
        if (program.signalAt !== null && signalSent === undefined && next >= program.signalAt) {
          yield* Quit.fire(Quit.signal("SIGTERM"))
          signalSent = next
          yield* sample
        }
        yield* drive(next)
        yield* settle
        if (secondSent === undefined && next >= secondAt && running.pollUnsafe() === undefined) {
          impl.force("SIGTERM")
          secondSent = next
        }
        yield* settle
      }
      if (report === undefined) endAt = yield* now
      const history = yield* Quit.history
      const deadlines = Option.getOrUndefined(yield* Quit.deadlines)
      const run: Run = {
        program,
        options,
        rec,
        report,
        endAt,
        eventsAtEnd: report === undefined ? rec.events.length : eventsAtEnd,
        history,
        deadlines,
        readiness,
        counts,
        signalSent,
        secondSent,
        errors,
        traffic,
        stops
      }
      return run
    }).pipe(Effect.provideService(Quit.Quit, quit))
  }).pipe(
    Effect.provide(TestClock.layer()),
    Effect.provideService(Logger.CurrentLoggers, new Set([logger])),
    Effect.catchCause((cause) => Effect.die(new Error(`the simulation itself failed: ${Cause.pretty(cause)}`)))
  )
}

/** Whether the program is refused at start (a component timeout longer than the shared one). */
export const refused = P.isRefused
