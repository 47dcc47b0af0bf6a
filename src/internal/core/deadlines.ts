/**
 * The instants of a shutdown, fixed once when the quit event fires and read
 * by every component — as a Go `context` deadline handed to every
 * `Shutdown`: nothing starts a timer of its own that could stack, and a
 * component may end sooner than a shared instant, never later.
 *
 * ```
 * fired ─drain delay─▶ stopping ─drain timeout─▶ drain ─close timeout─▶ close … shutdown
 * ```
 *
 * @internal
 */
import { Duration } from "effect"
import type { Options } from "./options.ts"
import type { Mode } from "./routing.ts"

/**
 * Epoch milliseconds on Effect's `Clock` (monotonic: see `QuitClock`).
 *
 * @internal
 */
export interface Deadlines {
  /** The quit event. */
  readonly fired: number
  /** The end of the drain delay: listeners close, phase `stopping`. `fired` when it fired while starting. */
  readonly stopping: number
  /** The drain deadline: units still in flight are cut, in every group. */
  readonly drain: number
  /** The close deadline: closers still running are abandoned. */
  readonly close: number
  /** The shutdown deadline: `Main.runMain` exits, whatever is still open. */
  readonly shutdown: number
}

/** A deadline by the name of the moment it ends. @internal */
export type Deadline = Exclude<keyof Deadlines, "fired">

/**
 * The instants for a quit event fired at `fired`. `delayed`: whether the
 * drain delay applies — not when nothing can have been routed here (the
 * program was still starting) or nothing is left to serve (it ended).
 *
 * @internal
 */
export const fix = (fired: number, options: Options, delayed: boolean): Deadlines => {
  const stopping = fired + (delayed ? Duration.toMillis(options.drainDelay) : 0)
  const drain = stopping + Duration.toMillis(options.drainTimeout)
  return {
    fired,
    stopping,
    drain,
    close: drain + Duration.toMillis(options.closeTimeout),
    shutdown: fired + Duration.toMillis(options.shutdownTimeout)
  }
}

/** The span from the quit event to `deadline`, before it has fired (as if it fired now). @internal */
export const span = (options: Options, deadline: Deadline): Duration.Duration => {
  const until = fix(0, options, true)
  return Duration.millis(until[deadline])
}

/** Time left until `deadline`, at `now`. @internal */
export const remaining = (deadlines: Deadlines, deadline: Deadline, now: number): Duration.Duration =>
  Duration.millis(Math.max(0, deadlines[deadline] - now))

/** The line logged at the quit event: when each deadline falls, from then. @internal */
export const describe = (deadlines: Deadlines, mode?: Mode): string => {
  const at = (instant: number) => Duration.format(Duration.millis(instant - deadlines.fired))
  const listeners = mode?._tag === "Auto"
    ? `listeners close once routing here has stopped, between ${Duration.format(mode.min)} and ${at(deadlines.stopping)}`
    : `listeners close in ${at(deadlines.stopping)}`
  return `${listeners}, drain deadline in ${at(deadlines.drain)}, ` +
    `close deadline in ${at(deadlines.close)}, shutdown deadline in ${at(deadlines.shutdown)}`
}
