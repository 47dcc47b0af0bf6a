/**
 * The data of the shutdown report: how each registered resource ended, and
 * how the run ended. Formatting lives with the public `Report` module.
 *
 * @internal
 */

/** @internal */
export type Outcome = "done" | "cut" | "timed out" | "failed" | "abandoned"

/** @internal */
export interface Row {
  readonly name: string
  readonly kind: string
  readonly outcome: Outcome
  readonly millis: number | undefined
  readonly inFlightAtDrain: number | undefined
  readonly inFlightAtEnd: number | undefined
  readonly detail: string | undefined
}

/** @internal */
export type Ending = "completed" | "failed" | "graceful" | "deadline" | "forced"

/**
 * How an automatic drain delay ended: on evidence, at its maximum, or
 * because the program ended by itself; after `millis` from the quit event.
 *
 * @internal
 */
export interface DrainDelayEnd {
  readonly by: "evidence" | "maximum" | "program"
  readonly millis: number
  /** What was seen, or what was still missing at the maximum. */
  readonly evidence: string
}

/** @internal */
export interface Report {
  readonly reason: string | undefined
  readonly ending: Ending
  readonly exitCode: number
  readonly totalMillis: number
  readonly rows: ReadonlyArray<Row>
  /** With `DRAIN_DELAY=auto`, once it ended. */
  readonly drainDelay?: DrainDelayEnd | undefined
}
