/**
 * The counting of the handoff scenario (test/reliability/full/handoff.test.ts):
 * what the load (test/reliability/fixtures/handoffLoad.ts) saw, against the
 * moments of the handoffs' SIGTERMs.
 *
 * "Sent before the SIGTERM" — the target is 0 failed among them, always. A
 * client cannot tell which instance a failed request reached (both listen
 * through the drain delay), so a failure is held against the SIGTERM that
 * preceded the failure: the latest SIGTERM at or before its end. It counts
 * against the target if it was sent before that SIGTERM (it was on its way,
 * or in progress, when the instance was told to go: the drain owes it an
 * answer), or if no SIGTERM preceded it at all (nothing excuses it). A
 * failure sent after that SIGTERM, and ended before the next one, is one the
 * handoff may cost: a connection to the draining instance's closing listener
 * or an idle keep-alive connection it closed — refused or reset, never
 * processed; counted apart (with tcp_migrate_req=1 the target is 0 of those too).
 */
import type { LoadSummary, Sample } from "../fixtures/handoffLoad.ts"

export interface Tally {
  readonly requests: number
  readonly ok: number
  readonly refused: number
  readonly reset: number
  /** Neither refused nor reset, nor ok: another status (nginx's 502), code, gRPC status, or a timeout. */
  readonly failed: number
  /** Of `failed`, answered 502 (nginx: its upstream connection failed). */
  readonly badGateway: number
  /** The failures sent before the SIGTERM that preceded them (see above): the target is none. */
  readonly failedBeforeSigterm: ReadonlyArray<Sample>
  /** Requests in progress at a SIGTERM (sent before it, ended after it): what the drain was tested on. */
  readonly inFlightAtSigterm: number
  /** Each kind of failure and how many: `reset ECONNRESET (socket hang up)` → 3. */
  readonly details: Readonly<Record<string, number>>
}

/** The latest of `moments` (sorted) at or before `t`, if any. */
const latestBefore = (moments: ReadonlyArray<number>, t: number): number | undefined => {
  let found: number | undefined
  for (const moment of moments) if (moment <= t) found = moment
  return found
}

export const tally = (load: LoadSummary, signalledAt: ReadonlyArray<number>): Tally => {
  const signals = [...signalledAt].sort((a, b) => a - b)
  const samples = load.samples
  const failures = samples.filter((sample) => sample.outcome !== "ok")
  const count = (outcome: Sample["outcome"]) => samples.filter((sample) => sample.outcome === outcome).length
  const details: Record<string, number> = {}
  for (const sample of failures) {
    const key = `${sample.outcome} ${sample.detail}`
    details[key] = (details[key] ?? 0) + 1
  }
  return {
    requests: samples.length,
    ok: count("ok"),
    refused: count("refused"),
    reset: count("reset"),
    failed: count("failed"),
    badGateway: failures.filter((sample) => sample.detail === "HTTP 502").length,
    failedBeforeSigterm: failures.filter((sample) => {
      const signal = latestBefore(signals, sample.endedAt)
      return signal === undefined || sample.sentAt < signal
    }),
    inFlightAtSigterm: samples.filter((sample) => signals.some((signal) => sample.sentAt < signal && signal <= sample.endedAt)).length,
    details
  }
}

/** `details` in words: `3 reset ECONNRESET (socket hang up), 1 failed HTTP 502`, or `none`. */
export const describeFailures = (tallied: Tally): string => {
  const entries = Object.entries(tallied.details).sort(([, a], [, b]) => b - a)
  return entries.length === 0 ? "none" : entries.map(([detail, n]) => `${n} ${detail}`).join(", ")
}
