/**
 * The shutdown sequence — every step from the quit event to `stopped`, for
 * every runner, written here in the order it happens:
 *
 * 1. {@link fire}, once — by a signal, code, a failure, or at the latest when
 *    the layers begin to be released: the deadlines are fixed (see
 *    `deadlines.ts`), the phase is `draining` (readiness fails), each entry
 *    hears it in that same call (HTTP keep-alive ends, workers stop taking),
 *    and the line `quit event (…)` is logged. With no drain delay, step 2
 *    happens in that same call too.
 * 2. {@link beginStopping}, when the drain delay ends, in that very turn:
 *    phase `stopping`; each entry hears it (listeners close); the stop
 *    functions run.
 * 3. At the drain deadline, {@link cut}: every group's units still in flight
 *    are interrupted, wherever the group sits in the layer graph.
 * 4. Meanwhile the program's scopes close, in Effect's order (reverse
 *    acquisition, merged layers in parallel): each group drains and each
 *    closer runs through {@link close}, bounded by the close deadline.
 * 5. {@link finish}: the units of `Quit.track`, then the closers registered
 *    outside any scope, last first.
 * 6. {@link stopped}: phase `stopped`; the quit event's own fibers end —
 *    under `Shutdown.run` (`run.ts`) once the report is made and handed to
 *    the runner, so that `Main.runMain` writes it and exits first.
 *
 * The runner adds what only a process can do (`Main.runMain`: signals, the
 * exit code, the shutdown deadline, flushing the output).
 *
 * @internal
 */
import { Cause, Duration, Effect, Exit, Fiber, Schedule, Stream } from "effect"
import { bounded } from "./bounded.ts"
import * as deadlines_ from "./deadlines.ts"
import * as progress_ from "./progress.ts"
import * as routing_ from "./routing.ts"
import { describeReason, type QuitImpl, type Reason } from "./quit.ts"
import { type Closed, Counted, type Entry } from "./registry.ts"

// ---- 1. the quit event ---------------------------------------------------------

/**
 * Fires the quit event once (true); later calls are harmless (false) and keep
 * the first reason. `immediate`: no drain delay — nothing is left to serve
 * (the program has ended). Nor is there one when the program was still
 * starting: nothing can have been routed to it.
 */
export const fire = (quit: QuitImpl, reason: Reason, options: { readonly immediate?: boolean } = {}): boolean => {
  if (quit.hasFired()) return false
  const delayed = options.immediate !== true && quit.phase.phase !== "starting"
  const deadlines = deadlines_.fix(quit.now(), quit.options, delayed)
  quit.markFired(reason, deadlines)
  quit.registry.call("fire", (entry, error) => logDefect(quit, `${entry.label}: reacting to the quit event failed`, error))
  if (deadlines.stopping <= deadlines.fired) beginStopping(quit)
  const auto = delayed ? quit.options.drainDelayMode : undefined
  quit.fork(Effect.logInfo(`quit event (${describeReason(reason)}): draining; ${deadlines_.describe(deadlines, auto)}`))
  quit.fork(keep(quit, deadlines))
  quit.fork(logProgress(quit))
  return true
}

/** Fires the quit event if it has not fired, and makes the exit code 1 either way. */
export const fail = (quit: QuitImpl, reason: Reason, options: { readonly immediate?: boolean } = {}): void => {
  quit.failed = true
  fire(quit, reason, options)
}

/** The quit event fires at the latest when the layers that hold it begin to be released. */
export const fireIfReleased = (quit: QuitImpl): void => {
  if (quit.released) fire(quit, { _tag: "Released" })
}

/** Whether the quit event has fired; also true once the layers are being released. */
export const hasFired = (quit: QuitImpl): boolean => {
  fireIfReleased(quit)
  return quit.hasFired()
}

/**
 * Calls `f` the moment the quit event fires — at once if it has — for as long
 * as `entry` is registered: in `fire` itself, not a turn later, so that it
 * holds whatever fires it.
 */
export const onFire = (quit: QuitImpl, entry: Entry, f: () => void): void => {
  quit.registry.onFire(entry, f)
  if (quit.hasFired()) quit.registry.call("fire", (e, error) => logDefect(quit, `${e.label}: reacting to the quit event failed`, error))
}

/** Calls `f` the moment the drain delay ends — at once if it has — for as long as `entry` is registered. */
export const onStopping = (quit: QuitImpl, entry: Entry, f: () => void): void => {
  quit.registry.onStopping(entry, f)
  if (quit.isAtLeast("stopping")) quit.registry.call("stopping", (e, error) => logDefect(quit, `${e.label}: stopping failed`, error))
}

const logDefect = (quit: QuitImpl, message: string, error: unknown): void => {
  quit.fork(Effect.logError(message, Cause.die(error)))
}

// ---- 2, 3. the end of the drain delay, the drain deadline ----------------------

// The shared instants, whoever runs the program: stopping at the end of the
// drain delay, the cut at the drain deadline — for every group, wherever it
// sits in the layer graph.
const keep = (quit: QuitImpl, deadlines: deadlines_.Deadlines): Effect.Effect<void> =>
  endOfDelay(quit, deadlines).pipe(
    Effect.andThen(Effect.sync(() => beginStopping(quit))),
    Effect.andThen(quit.sleepUntil(deadlines.drain)),
    // Whatever is in flight, also in a group already abandoned at a close
    // deadline that falls on this same instant (a close timeout of 0).
    Effect.andThen(Effect.suspend(() =>
      Effect.forEach(
        [...quit.registry.counted()].filter((group) => group.inFlight.count > 0),
        (group) => cut(quit, group, "at the drain deadline"),
        { concurrency: "unbounded", discard: true }
      )
    ))
  )

/**
 * The end of the drain delay: its duration; or, automatic, the evidence that
 * routing here has stopped, between its minimum and its maximum (the
 * `stopping` deadline) — logged with what ended it.
 */
const endOfDelay = (quit: QuitImpl, deadlines: deadlines_.Deadlines): Effect.Effect<void> => {
  const auto = autoDelay(quit, deadlines)
  if (auto === undefined) return quit.sleepUntil(deadlines.stopping)
  return routing_.awaitEvidence(quit.routing, auto, deadlines.fired, deadlines.stopping, quit.clock)
}

// The automatic drain delay of this quit event, if it has one (none when it fired while starting).
const autoDelay = (quit: QuitImpl, deadlines: deadlines_.Deadlines): routing_.Auto | undefined => {
  const mode = quit.options.drainDelayMode
  return mode._tag === "Auto" && deadlines.stopping > deadlines.fired ? mode : undefined
}

// With an automatic drain delay, what ended it: recorded and logged once,
// whoever ends it (the evidence, the maximum, or the program ending by itself).
const noteEndOfDelay = (quit: QuitImpl): void => {
  const deadlines = quit.deadlines
  const auto = deadlines === undefined ? undefined : autoDelay(quit, deadlines)
  if (deadlines === undefined || auto === undefined) return
  const ending = routing_.endingAt(quit.routing, auto, deadlines.fired, deadlines.stopping, quit.now(), true)
  if ("_tag" in ending) return
  quit.routing.end(ending)
  quit.fork(Effect.logInfo(
    `drain delay ended after ${Duration.format(Duration.millis(ending.millis))}, ${routing_.describeEnd(ending)}: ${ending.evidence}`
  ))
}

/**
 * The end of the drain delay, once: phase `stopping`, then each entry's
 * `onStopping` (a listener closes) in this same call, then what waits for
 * it (`awaitStopping`), then the stop functions.
 */
export const beginStopping = (quit: QuitImpl): void => {
  if (!quit.setPhase("stopping")) return
  // The listeners first: what waits for the end of the drain delay resumes
  // in `markStopping` itself, and the program's interruption with it.
  quit.registry.call("stopping", (entry, error) => logDefect(quit, `${entry.label}: stopping failed`, error))
  noteEndOfDelay(quit)
  quit.markStopping()
  startStopFuncs(quit)
}

const stopFuncs = new WeakMap<QuitImpl, Fiber.Fiber<void>>()

const startStopFuncs = (quit: QuitImpl): Fiber.Fiber<void> => {
  const started = stopFuncs.get(quit)
  if (started !== undefined) return started
  const fiber = quit.fork(Effect.forEach(quit.stopFuncs, (stop) => close(quit, stop.entry, done(stop.run), stop.timeout), {
    concurrency: "unbounded",
    discard: true
  }))
  stopFuncs.set(quit, fiber)
  return fiber
}

/** The stop functions, run once at the end of the drain delay, concurrently; completes when all have. */
export const runStopFuncs = (quit: QuitImpl): Effect.Effect<void> =>
  Effect.suspend(() => quit.stopFuncs.length === 0 ? Effect.void : Effect.asVoid(Fiber.await(startStopFuncs(quit))))

/**
 * Cuts the units of `group` still in flight, once: interrupts their fibers at
 * once, then runs its `onCut` in a fiber of its own (it may wait on
 * uninterruptible work) and completes when that ends. A second cut reaches
 * only what came since the first (a unit taken after it); with nothing new it
 * waits for the first one's `onCut`.
 */
export const cut = (quit: QuitImpl, group: Counted, why: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    const count = group.inFlight.cut((fresh) => {
      if (fresh > 0) group.cut = { count: (group.cut?.count ?? 0) + fresh, why: group.cut?.why ?? why }
    })
    if (count === 0) return group.cutting ?? Effect.void
    const onCut = group.onCut === undefined
      ? Effect.void
      : Effect.catchCause(group.onCut, (cause) => Effect.logError(`${group.label}: cutting failed`, cause))
    const cutting = Effect.asVoid(Fiber.await(quit.fork(onCut)))
    group.cutting = cutting
    return Effect.andThen(Effect.logWarning(`${group.label}: cutting ${count} in flight ${why}`), cutting)
  })

// ---- 4. closing --------------------------------------------------------------------

const done = (run: Effect.Effect<void, unknown>) => Effect.as(run, { outcome: "done" } as const)

/** A cause in a few words, for the report. */
export const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? error.message : String(error)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/**
 * Closes one entry: runs `body`, abandoning it `limit` from now or at the
 * close deadline, whichever comes first; records the outcome and logs a
 * failure (with its cause) or an abandon (by name). Never fails: the other
 * resources still close.
 */
export const close = (
  quit: QuitImpl,
  entry: Entry,
  body: Effect.Effect<Closed, unknown>,
  limit: Duration.Duration
): Effect.Effect<void> =>
  Effect.suspend(() => {
    fireIfReleased(quit)
    const started = quit.now()
    if (!entry.begin(started)) return Effect.void
    if (entry instanceof Counted) entry.noteAtDrain()
    const at = started + Duration.toMillis(limit)
    return bounded(body, quit.until(at, "close")).pipe(
      Effect.flatMap((result) => {
        if (result._tag === "Exited") {
          const exit = result.exit
          if (Exit.isSuccess(exit)) {
            entry.end(quit.now(), exit.value)
            return Effect.void
          }
          entry.end(quit.now(), { outcome: "failed", detail: describeCause(exit.cause) })
          return Effect.logError(`${entry.label} failed to close`, exit.cause)
        }
        const deadlines = quit.deadlines
        const atDeadline = deadlines !== undefined && deadlines.close <= at
        entry.end(quit.now(), {
          outcome: "timed out",
          detail: atDeadline ? "abandoned at the close deadline" : `abandoned after ${Duration.format(limit)}`
        })
        // Abandoned, but what it still has in flight is cut all the same (at
        // once, not waited for): with no close timeout, the close deadline is
        // the drain deadline, and this may come first.
        if (entry instanceof Counted && entry.inFlight.count > 0 && deadlines !== undefined && quit.now() >= deadlines.drain) {
          quit.fork(cut(quit, entry, "at the drain deadline"))
        }
        return Effect.logWarning(
          `${entry.label} did not close ${atDeadline ? "by the close deadline" : `within ${Duration.format(limit)}`}; abandoned`
        )
      }),
      Effect.ensuring(Effect.sync(() => quit.forget(entry)))
    )
  })

// ---- 5, 6. what no scope closes; stopped ---------------------------------------------

const finishing = new WeakMap<QuitImpl, Fiber.Fiber<void>>()

/**
 * What no scope closes, once the program has stopped: the units counted with
 * `Quit.track` (drained by `drainTask`, cut at the drain deadline), then the
 * closers registered outside any scope, last registered first.
 */
export const finish = (quit: QuitImpl, drainTask: (group: Counted) => Effect.Effect<void>): Effect.Effect<void> =>
  // First a turn of the scheduler: a unit the program forked as its last
  // step (`Quit.track` then `Effect.forkDetach`) is counted when its fiber
  // starts, which is then.
  Effect.andThen(
    Effect.yieldNow,
    Effect.suspend(() => {
      // Nothing outside any scope: nothing to wait for (the common case).
      if (quit.stopFuncs.length === 0 && quit.tasks.size === 0 && quit.closers.length === 0) return Effect.void
      let fiber = finishing.get(quit)
      if (fiber === undefined) {
        fiber = quit.fork(runStopFuncs(quit).pipe(
          Effect.andThen(Effect.forEach(quit.tasks.values(), drainTask, { concurrency: "unbounded", discard: true })),
          Effect.andThen(Effect.suspend(() =>
            Effect.forEach([...quit.closers].reverse(), (closer) => close(quit, closer.entry, done(closer.run), closer.timeout), {
              discard: true
            })
          ))
        ))
        finishing.set(quit, fiber)
      }
      return Effect.asVoid(Fiber.await(fiber))
    })
  )

/** The end: phase `stopped`; the quit event's own fibers (timers, progress) end. */
export const stopped = (quit: QuitImpl): void => {
  quit.setPhase("stopped")
  quit.end()
}

// ---- watching it ---------------------------------------------------------------------

/** What the shutdown still waits on; `undefined` before the quit event. */
export const progress = (quit: QuitImpl): progress_.Progress | undefined => {
  const deadlines = quit.deadlines
  return deadlines === undefined ? undefined : progress_.snapshot({ entries: quit.registry.entries, deadlines, now: quit.now() })
}

/** From the quit event: the progress at once, then every `every`, until phase `stopped`. */
export const progressEvery = (quit: QuitImpl, every: Duration.Duration): Stream.Stream<progress_.Progress> =>
  Stream.unwrap(Effect.map(quit.whenFired, ({ deadlines }) => {
    const tick = Effect.sync(() => progress_.snapshot({ entries: quit.registry.entries, deadlines, now: quit.now() }))
    return Stream.fromEffectSchedule(tick, Schedule.spaced(every))
  })).pipe(Stream.interruptWhen(quit.reached("stopped")))

// Every `progressInterval` from the quit event, a line saying what is still open.
const logProgress = (quit: QuitImpl): Effect.Effect<void> => {
  const every = quit.options.progressInterval
  if (Duration.isZero(every)) return Effect.void
  return Effect.forever(Effect.andThen(
    Effect.sleep(every),
    Effect.suspend(() => {
      const now = progress(quit)
      return now === undefined ? Effect.void : Effect.logInfo(progress_.describe(now))
    })
  ))
}
