/**
 * The shutdown as a trace, through Effect's `Tracer`: a span `shutdown` from
 * the quit event to the end, a child for each phase it went through
 * (`draining`, `stopping`), and under `stopping` a span for each resource
 * that closed — a group with its units in flight at the drain and at the end
 * and how many were cut, a closer with its outcome.
 *
 * Made when the shutdown has ended, from what the registry recorded, with the
 * times at which each step began and ended: one place, whoever ran the
 * program, and nothing on the path of the program's work. With no tracer
 * installed (Effect's native one), nothing is made.
 *
 * @internal
 */
import { Context, Exit, Option, Tracer } from "effect"
import { Counted, type Registry } from "./registry.ts"

/** What the trace is made of. @internal */
export interface Source {
  readonly deadlines: { readonly fired: number } | undefined
  readonly history: ReadonlyArray<{ readonly phase: string; readonly at: number }>
  readonly registry: Registry
  now(): number
}

/** How the run ended, when a runner knows (`Shutdown.run`). @internal */
export interface Summary {
  readonly reason: string | undefined
  readonly ending?: string | undefined
  readonly exitCode?: number | undefined
}

const nanos = (millis: number): bigint => BigInt(Math.round(millis)) * 1_000_000n

const PREFIX = "effect_graceful"

/** Makes the spans with `tracer` (the runner's, or the one in the quit event's context). @internal */
export const traceShutdown = (tracer: Tracer.Tracer, source: Source, summary: Summary): void => {
  const fired = source.deadlines?.fired
  // Apart, so that a process with no tracer never even compiles the rest: it
  // runs once, on the way to the exit.
  if (tracer !== Tracer.nativeTracer && fired !== undefined) spans(tracer, source, summary, fired)
}

const spans = (tracer: Tracer.Tracer, source: Source, summary: Summary, fired: number): void => {
  const now = source.now()
  const make = (name: string, parent: Tracer.AnySpan | undefined, start: number, attributes: Record<string, unknown>) => {
    const span = tracer.span({
      name,
      parent: Option.fromUndefinedOr(parent),
      annotations: Context.empty(),
      links: [],
      startTime: nanos(start),
      kind: "internal",
      root: parent === undefined,
      sampled: true
    })
    for (const [key, value] of Object.entries(attributes)) if (value !== undefined) span.attribute(`${PREFIX}.${key}`, value)
    return span
  }
  const root = make("shutdown", undefined, fired, {
    reason: summary.reason,
    ending: summary.ending,
    exit_code: summary.exitCode
  })
  const at = (phase: string) => source.history.find((change) => change.phase === phase)?.at
  const stoppingAt = at("stopping")
  const stoppedAt = at("stopped") ?? now
  const draining = make("draining", root, fired, {})
  draining.end(nanos(stoppingAt ?? stoppedAt), Exit.void)
  const stopping = stoppingAt === undefined ? undefined : make("stopping", root, stoppingAt, {})
  for (const entry of source.registry.entries) {
    // The report's row: the same outcome and counts, whoever reads them.
    const row = entry.toRow(now)
    const state = entry.state
    const span = make(`${row.kind} ${row.name}`, stopping ?? root, state._tag === "Open" ? stoppedAt : state.since, {
      name: row.name,
      kind: row.kind,
      outcome: row.outcome,
      detail: row.detail,
      "in_flight.at_drain": row.inFlightAtDrain,
      "in_flight.at_end": row.inFlightAtEnd,
      cut: entry instanceof Counted ? entry.cut?.count ?? 0 : undefined
    })
    span.end(nanos(state._tag === "Closed" ? state.at : stoppedAt), row.outcome === "done" ? Exit.void : Exit.fail(row.outcome))
  }
  stopping?.end(nanos(stoppedAt), Exit.void)
  root.end(nanos(stoppedAt), summary.exitCode === undefined || summary.exitCode === 0 ? Exit.void : Exit.fail(summary.ending))
}
