/**
 * The shutdown report: what every registered resource did between the quit
 * event and process exit. It is written through Effect's `Logger` when the
 * runner ends: a readable table by default, one JSON line per row (plus a
 * summary line) when the log format is `json`.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as internal from "./internal/core/report.ts"
import { describeEnd } from "./internal/core/routing.ts"

/**
 * How a resource ended.
 *
 * - `done`: closed, nothing was lost.
 * - `cut`: the drain deadline (or its own drain timeout) passed; the units
 *   still in flight were cut.
 * - `timed out`: its own timeout or the close deadline passed; it was abandoned.
 * - `failed`: its close (or its stop) failed (the cause is in `detail` and in the log).
 * - `abandoned`: still open when the process exited (shutdown deadline or a
 *   second signal).
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome = internal.Outcome

/**
 * One registered resource in the report: its name and kind, its outcome, how
 * long its close took in milliseconds (absent if it never began closing), its
 * units in flight when draining began and when it ended, and a short reason.
 *
 * @category models
 * @since 0.1.0
 */
export type Row = internal.Row

/**
 * How the run ended.
 *
 * - `completed`: the program ended by itself before any quit event.
 * - `failed`: the program failed before any quit event — while starting (bad
 *   configuration, a port in use) or while running.
 * - `graceful`: the quit event fired and everything closed in time.
 * - `deadline`: the shutdown deadline passed first.
 * - `forced`: a second signal arrived during shutdown.
 *
 * @category models
 * @since 0.1.0
 */
export type Ending = internal.Ending

/**
 * How an automatic drain delay (`DRAIN_DELAY=auto`) ended: `by` evidence
 * that routing here had stopped, at its maximum, or as the program ended by
 * itself (nothing left to serve); `millis` after the quit
 * event; `evidence`: what was seen, or what was still missing.
 *
 * @category models
 * @since 0.1.0
 */
export type DrainDelayEnd = internal.DrainDelayEnd

/**
 * The whole report: what fired the quit event (in words), how it ended, the
 * exit code, the time from the quit event to the report, the rows, and how
 * an automatic drain delay ended.
 *
 * @category models
 * @since 0.1.0
 */
export type Report = internal.Report

const dash = (value: number | string | undefined): string => value === undefined ? "-" : String(value)

/**
 * The report as a text table, as the text log format prints it.
 *
 * @example
 * ```text
 * shutdown report: SIGTERM, graceful, exit 0, 312 ms
 *   name      kind    outcome  ms   in flight (drain → end)  detail
 *   http      http    done     301  1 → 0
 *   database  closer  done     2    -
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const format = (report: Report): string => {
  const header = ["name", "kind", "outcome", "ms", "in flight (drain → end)", "detail"]
  const body = report.rows.map((row) => [
    row.name,
    row.kind,
    row.outcome,
    dash(row.millis),
    row.inFlightAtDrain === undefined ? "-" : `${row.inFlightAtDrain} → ${dash(row.inFlightAtEnd)}`,
    row.detail ?? ""
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => "  " + cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  const delay = report.drainDelay
  const title = `shutdown report: ${report.reason ?? "no quit event"}, ${report.ending}, exit ${report.exitCode}, ` +
    `${report.totalMillis} ms` +
    (delay === undefined ? "" : `; drain delay ${delay.millis} ms, ended ${describeEnd(delay)}: ${delay.evidence}`)
  return report.rows.length === 0 ? title : [title, line(header), ...body.map(line)].join("\n")
}

/**
 * Writes the report through the current `Logger`: one message with the table
 * for `text`, one annotated line per row and a summary line for `json`. The
 * level is `Info` for exit code 0 and `Warn` otherwise.
 *
 * @category combinators
 * @since 0.1.0
 */
export const log = (report: Report, logFormat: "text" | "json"): Effect.Effect<void> => {
  const write = report.exitCode === 0 ? Effect.logInfo : Effect.logWarning
  if (logFormat === "text") return write(format(report))
  const summary = {
    reason: report.reason ?? null,
    ending: report.ending,
    exitCode: report.exitCode,
    totalMillis: report.totalMillis,
    ...(report.drainDelay === undefined ? {} : {
      drainDelayMillis: report.drainDelay.millis,
      drainDelayEndedBy: report.drainDelay.by,
      drainDelayEvidence: report.drainDelay.evidence
    })
  }
  return Effect.forEach(report.rows, (row) =>
    write("shutdown report row").pipe(Effect.annotateLogs({
      name: row.name,
      kind: row.kind,
      outcome: row.outcome,
      millis: row.millis ?? null,
      inFlightAtDrain: row.inFlightAtDrain ?? null,
      inFlightAtEnd: row.inFlightAtEnd ?? null,
      detail: row.detail ?? null
    })), { discard: true }).pipe(
      Effect.andThen(write("shutdown report").pipe(Effect.annotateLogs(summary)))
    )
}
