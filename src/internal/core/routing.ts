/**
 * What an instance sees of the balancers that route to it, and the rule that
 * ends an automatic drain delay (`DRAIN_DELAY=auto`).
 *
 * Seen: each prober of readiness (its address and user agent) with the times
 * of its last probes, and how many not-ready answers it got since the quit
 * event; the last request routed here (probes aside) since the quit event.
 *
 * The rule: the listeners close at the first instant `t` from `min` after the
 * quit event at which
 *
 * 1. every prober — whoever probed readiness at least twice in the minute
 *    before `t`: a balancer probes on a cadence, a person's one `curl` does
 *    not count — has been answered not ready in at least `notReady` rounds
 *    since the quit event, and
 * 2. no request has arrived for `quiet` (counted from the quit event);
 *
 * and at `max` whatever the evidence. With no prober, (2) alone is the
 * evidence, held back by `min`.
 *
 * A round: one balancer may probe through several checks from one address
 * with one agent (HAProxy, a backend per port, each checking the same
 * `/readyz`), seen here as one prober whose probes come in clusters. A
 * not-ready answer counts only half its longest gap or more after the answer
 * before it that counted — or, for the first, after its last probe before
 * the quit event — so that a cluster counts once, and one the quit event cut
 * in two not at all: after `notReady` rounds each of its checks has had
 * `notReady` not-ready answers. (Checks spread evenly over their period look
 * like one faster prober: give them user agents of their own.)
 *
 * @internal
 */
import { Duration, Effect } from "effect"
import type { DrainDelayEnd } from "./report.ts"

/** The settings of an automatic drain delay; `max` is the drain delay of the options (its ceiling). @internal */
export interface Auto {
  readonly _tag: "Auto"
  readonly min: Duration.Duration
  /** Rounds of not-ready answers each prober must have had (a balancer's `fall`, Kubernetes' `failureThreshold`). */
  readonly notReady: number
  /** How long no request may have arrived. */
  readonly quiet: Duration.Duration
}

/** How the drain delay ends: after its duration, or by the rule of {@link Auto}. @internal */
export type Mode = { readonly _tag: "Fixed" } | Auto

/** A prober is one while it probed at least twice within this window. */
const WINDOW_MILLIS = 60_000
/** The probe times kept per prober. */
const KEPT = 16
/** Probers kept at most; beyond it the least recent go first. */
const MAX_PROBERS = 256

interface Prober {
  readonly key: string
  /** Its last probes, oldest first. */
  readonly times: Array<number>
  /** Rounds with a not-ready answer since the quit event. */
  notReady: number
  /** When the last counted one came, or its last probe before the quit event. */
  countedAt: number | undefined
}

/** Why the delay is still on, and when time alone could change that. @internal */
export type Verdict =
  | { readonly _tag: "End"; readonly evidence: string }
  | { readonly _tag: "Wait"; readonly until: number; readonly missing: string }

/** How the drain delay ended, for the log and the report. @internal */
export type Ended = DrainDelayEnd

const ms = (millis: number): string => Duration.format(Duration.millis(Math.round(millis)))

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}

const cadence = (prober: Prober): number => median(prober.times.slice(1).map((time, i) => time - (prober.times[i] ?? time)))

const longestGap = (prober: Prober): number =>
  prober.times.slice(1).reduce((longest, time, i) => Math.max(longest, time - (prober.times[i] ?? time)), 0)

const describe = (prober: Prober): string => `${prober.key} (every ${ms(cadence(prober))})`

/** @internal */
export class Routing {
  readonly #probers = new Map<string, Prober>()
  readonly #waiters = new Set<() => void>()
  #fired: number | undefined
  #lastRequest = 0
  #ended: Ended | undefined

  /** The quit event fired at `now`: not-ready answers and requests count from here. */
  fire(now: number): void {
    this.#fired ??= now
  }

  /** A request routed here (a probe is not one). Counted from the quit event only. */
  request(now: number): void {
    if (this.#fired !== undefined) this.#lastRequest = now
  }

  /** A readiness probe from `key` was answered (`ready` or not) at `now`; wakes whoever waits for evidence. */
  probe(key: string, ready: boolean, now: number): void {
    let prober = this.#probers.get(key)
    if (prober === undefined) {
      if (this.#probers.size >= MAX_PROBERS) this.#forgetOldest()
      prober = { key, times: [], notReady: 0, countedAt: undefined }
      this.#probers.set(key, prober)
    }
    const previous = prober.times.at(-1)
    prober.times.push(now)
    if (prober.times.length > KEPT) prober.times.shift()
    if (this.#fired === undefined || ready) {
      if (prober.notReady === 0) prober.countedAt = now
    } else {
      // The first answer after the quit event is measured from its last probe before it.
      const since = prober.countedAt ?? previous
      if (since === undefined || now - since >= longestGap(prober) / 2) {
        prober.notReady++
        prober.countedAt = now
      }
    }
    for (const wake of [...this.#waiters]) wake()
  }

  /** Completes at the next probe. */
  get nextProbe(): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const wake = () => {
        this.#waiters.delete(wake)
        resume(Effect.void)
      }
      this.#waiters.add(wake)
      return Effect.sync(() => void this.#waiters.delete(wake))
    })
  }

  /** The probers that count at `now`: two probes or more in the minute before it. */
  probers(now: number): ReadonlyArray<Prober> {
    return [...this.#probers.values()].filter((prober) => prober.times.filter((time) => time > now - WINDOW_MILLIS).length >= 2)
  }

  /** The rule, at `now`, for a quit event fired at `fired`. */
  evaluate(auto: Auto, fired: number, now: number): Verdict {
    const probers = this.probers(now)
    const pending = probers.filter((prober) => prober.notReady < auto.notReady)
    const lastRequest = Math.max(fired, this.#lastRequest)
    const quietFrom = lastRequest + Duration.toMillis(auto.quiet)
    const min = fired + Duration.toMillis(auto.min)
    if (pending.length > 0) {
      const missing = pending.map((prober) => `${describe(prober)} answered not ready in ${prober.notReady} of ${auto.notReady} rounds`)
      // A probe may change this; so may a pending prober's probes leaving the window.
      const leaves = Math.min(...pending.map((prober) => (prober.times.at(-2) ?? now) + WINDOW_MILLIS))
      return { _tag: "Wait", until: leaves, missing: missing.join("; ") }
    }
    const seen = probers.length === 0
      ? "no prober"
      : `${probers.length === 1 ? "its prober" : `all ${probers.length} probers`} answered not ready in ${auto.notReady} rounds (${
        probers.map(describe).join(", ")
      })`
    const quiet = lastRequest === fired
      ? `no request since the quit event`
      : `no request for ${ms(now - lastRequest)}`
    if (now < quietFrom) return { _tag: "Wait", until: Math.max(min, quietFrom), missing: `a request ${ms(now - lastRequest)} ago` }
    if (now < min) return { _tag: "Wait", until: min, missing: `the minimum, ${ms(min - fired)}` }
    return { _tag: "End", evidence: `${seen}; ${quiet}` }
  }

  /** Records how the delay ended; the first record stands. */
  end(ended: Ended): void {
    this.#ended ??= ended
  }

  get ended(): Ended | undefined {
    return this.#ended
  }

  #forgetOldest(): void {
    let oldest: Prober | undefined
    for (const prober of this.#probers.values()) {
      if (oldest === undefined || (prober.times.at(-1) ?? 0) < (oldest.times.at(-1) ?? 0)) oldest = prober
    }
    if (oldest !== undefined) this.#probers.delete(oldest.key)
  }
}

/** One turn of the event loop through its I/O (`setImmediate` runs after the poll phase). */
const turn: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

// Two: a connection accepted in the first is read in the second.
const ioTurn = Effect.andThen(turn, turn)

/**
 * How the delay ends if it ends at `now`: on evidence if the rule says so,
 * else at its maximum if that has come, else because the program ended by
 * itself (nothing is left to serve); the verdict while it goes on.
 *
 * @internal
 */
export const endingAt = (routing: Routing, auto: Auto, fired: number, max: number, now: number, programEnded: boolean): Ended | Verdict => {
  const verdict = routing.evaluate(auto, fired, now)
  if (verdict._tag === "End") return { by: "evidence", millis: now - fired, evidence: verdict.evidence }
  if (now >= max) return { by: "maximum", millis: now - fired, evidence: `still missing: ${verdict.missing}` }
  if (programEnded) return { by: "program", millis: now - fired, evidence: `the program ended; still missing: ${verdict.missing}` }
  return verdict
}

/** How the delay ended, in words: `on evidence`, `at its maximum`, `as the program ended`. @internal */
export const describeEnd = (ended: Ended): string =>
  ended.by === "evidence" ? "on evidence" : ended.by === "maximum" ? "at its maximum" : "as the program ended"

/**
 * Waits, from the quit event at `fired`, until the rule of `auto` says the
 * routing here has stopped or `max` (an instant) comes (what ended it is
 * noted by whoever ends the delay: `sequence.beginStopping`).
 * Event-driven: it wakes at a probe, or when time alone could change the
 * verdict (the minimum, the end of a quiet period, a prober leaving the
 * window), never on a poll. Woken by time, it lets the event loop turn twice
 * through its I/O before it looks (a connection accepted in the first is read
 * in the second): a loop starved of CPU runs its timers first, and would see
 * a quiet period while requests wait unread in its sockets.
 *
 * @internal
 */
export const awaitEvidence = (
  routing: Routing,
  auto: Auto,
  fired: number,
  max: number,
  clock: { readonly now: () => number; readonly sleepUntil: (at: number) => Effect.Effect<void> }
): Effect.Effect<void> => {
  const loop: Effect.Effect<void> = Effect.suspend(() => {
    const now = clock.now()
    const ending = endingAt(routing, auto, fired, max, now, false)
    if (!("_tag" in ending)) return Effect.void
    const wake = ending._tag === "Wait" ? Math.min(ending.until, max) : max
    // (At the maximum nothing is read: it ends the delay whatever arrived.)
    const woken = wake >= max ? clock.sleepUntil(wake) : Effect.andThen(clock.sleepUntil(wake), ioTurn)
    return Effect.andThen(Effect.raceFirst(woken, routing.nextProbe), loop)
  })
  return loop
}
