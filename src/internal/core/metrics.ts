/**
 * The quit event's own series: the phase, the time since the quit event, and
 * the shutdown's duration once it ended. Read from the quit event when
 * metrics are collected (a `/metrics` scrape), never updated on a path of
 * the program's work.
 *
 * @internal
 */
import type { Context } from "effect"
import { Metric } from "effect"
import { constVoid } from "effect/Function"

/** What the series read. @internal */
export interface Source {
  readonly phase: { readonly phase: string }
  readonly history: ReadonlyArray<{ readonly phase: string; readonly at: number }>
  readonly deadlines: { readonly fired: number } | undefined
  now(): number
}

const PHASES = ["starting", "running", "draining", "stopping", "stopped"] as const

const gauge = (context: Context.Context<never>, name: string, description: string, read: () => number, attributes?: Record<string, string>) =>
  Metric.registerUnsafe(Metric.gauge(name, { description, attributes }), context, {
    get: () => ({ value: read() }),
    update: constVoid,
    modify: constVoid
  })

/** @internal */
export const register = (quit: Source, context: Context.Context<never>): void => {
  for (const phase of PHASES) {
    gauge(context, "effect_graceful_phase", "1 for the current phase of the quit event, 0 for the others", () =>
      quit.phase.phase === phase ? 1 : 0, { phase })
  }
  const stoppedAt = () => quit.history.find((change) => change.phase === "stopped")?.at
  gauge(context, "effect_graceful_since_quit_seconds", "Seconds since the quit event fired (0 before it fires)", () => {
    const fired = quit.deadlines?.fired
    return fired === undefined ? 0 : (quit.now() - fired) / 1000
  })
  gauge(context, "effect_graceful_shutdown_duration_seconds", "Seconds the shutdown took, once it ended (0 before)", () => {
    const fired = quit.deadlines?.fired
    const stopped = stoppedAt()
    return fired === undefined || stopped === undefined ? 0 : (stopped - fired) / 1000
  })
}
