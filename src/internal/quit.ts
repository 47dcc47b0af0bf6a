/**
 * The machinery of the quit event: phase, firing, the registry of resources
 * that feeds the shutdown report, and the bounded close every resource goes
 * through.
 *
 * @internal
 */
import type { Clock, Context } from "effect"
import { Cause, Deferred, Duration, Effect, Exit, PubSub, Stream } from "effect"
import type * as Options from "../Options.ts"
import type * as Report from "../Report.ts"
import { bounded } from "./bounded.ts"
import { InFlight } from "./inFlight.ts"

/** @internal */
export type Phase = "starting" | "running" | "draining" | "stopping" | "stopped"

/** @internal */
export interface PhaseChange {
  readonly phase: Phase
  /** Epoch milliseconds, read from Effect's `Clock` (so `TestClock` in tests). */
  readonly at: number
}

/** @internal */
export type Reason =
  | { readonly _tag: "Signal"; readonly signal: NodeJS.Signals }
  | { readonly _tag: "Requested"; readonly reason: string }
  | { readonly _tag: "Failure"; readonly reason: string; readonly error: unknown }
  | { readonly _tag: "Completed" }

/** @internal */
export const describeReason = (reason: Reason): string => {
  switch (reason._tag) {
    case "Signal":
      return reason.signal
    case "Requested":
      return `requested: ${reason.reason}`
    case "Failure":
      return `failure: ${reason.reason}`
    case "Completed":
      return "program completed"
  }
}

const ORDER: Record<Phase, number> = { starting: 0, running: 1, draining: 2, stopping: 3, stopped: 4 }

/** What a close body reports when it ends normally. */
export interface Closed {
  readonly outcome: "done" | "cut"
  readonly detail?: string | undefined
}

/** One registered resource: a row of the report in the making. @internal */
export class Entry {
  readonly name: string
  readonly kind: string
  readonly inFlight: InFlight | undefined
  /** Completed when its close begins: work loops stop taking new units. */
  readonly closing = Deferred.makeUnsafe<void>()
  state: "open" | "closing" | "closed" = "open"
  closeStartedAt: number | undefined
  closedAt: number | undefined
  inFlightAtDrain: number | undefined
  inFlightAtEnd: number | undefined
  outcome: Report.Outcome | undefined
  detail: string | undefined

  constructor(name: string, kind: string, inFlight: InFlight | undefined) {
    this.name = name
    this.kind = kind
    this.inFlight = inFlight
  }

  /** A row for the report; an entry not closed by now was abandoned by the exit. */
  toRow(now: number): Report.Row {
    const closing = this.state !== "open"
    return {
      name: this.name,
      kind: this.kind,
      outcome: this.outcome ?? "abandoned",
      millis: closing ? (this.closedAt ?? now) - this.closeStartedAt! : undefined,
      inFlightAtDrain: this.inFlight === undefined ? undefined : this.inFlightAtDrain ?? this.inFlight.count,
      inFlightAtEnd: this.inFlight === undefined ? undefined : this.inFlightAtEnd ?? this.inFlight.count,
      detail: this.detail ??
        (this.state === "closing" ? "still closing at exit" : this.state === "open" ? "never began closing" : undefined)
    }
  }
}

/** A stop function or closer registered outside any scope. @internal */
interface Registered {
  readonly entry: Entry
  readonly run: Effect.Effect<void, unknown>
  readonly timeout: Duration.Duration
}

/** @internal */
export class QuitImpl {
  readonly options: Options.Options
  readonly #clock: Clock.Clock
  readonly #context: Context.Context<never>
  readonly #phases: PubSub.PubSub<PhaseChange>
  readonly #history: Array<PhaseChange> = []
  readonly #fired = Deferred.makeUnsafe<Reason>()
  readonly #forced = Deferred.makeUnsafe<NodeJS.Signals>()
  readonly entries: Array<Entry> = []
  readonly #names = new Set<string>()
  readonly stopFuncs: Array<Registered> = []
  readonly closers: Array<Registered> = []
  readonly tasks = new Map<string, Entry & { readonly inFlight: InFlight }>()
  reason: Reason | undefined
  failed = false
  firedAt: number | undefined

  constructor(
    options: Options.Options,
    clock: Clock.Clock,
    context: Context.Context<never>,
    phases: PubSub.PubSub<PhaseChange>,
    initial: Phase
  ) {
    this.options = options
    this.#clock = clock
    this.#context = context
    this.#phases = phases
    this.setPhase(initial)
  }

  now(): number {
    return this.#clock.currentTimeMillisUnsafe()
  }

  // ---- phase ---------------------------------------------------------------

  get phase(): PhaseChange {
    return this.#history[this.#history.length - 1]!
  }

  get history(): ReadonlyArray<PhaseChange> {
    return this.#history
  }

  get phases(): Stream.Stream<PhaseChange> {
    return Stream.fromPubSub(this.#phases)
  }

  /** Moves forward only: a late "running" after a quit event is ignored. */
  setPhase(phase: Phase): boolean {
    const current = this.#history[this.#history.length - 1]
    if (current !== undefined && ORDER[phase] <= ORDER[current.phase]) return false
    const change = { phase, at: this.now() }
    this.#history.push(change)
    PubSub.publishUnsafe(this.#phases, change)
    return true
  }

  // ---- the quit event ------------------------------------------------------

  hasFired(): boolean {
    return this.reason !== undefined
  }

  get fired(): Effect.Effect<Reason> {
    return Deferred.await(this.#fired)
  }

  /** Fires once; later calls are harmless and return false. */
  fire(reason: Reason): boolean {
    if (this.reason !== undefined) return false
    this.reason = reason
    if (reason._tag === "Failure") this.failed = true
    this.firedAt = this.now()
    for (const entry of this.entries) {
      if (entry.inFlight !== undefined && entry.inFlightAtDrain === undefined) {
        entry.inFlightAtDrain = entry.inFlight.count
      }
    }
    this.setPhase("draining")
    Deferred.doneUnsafe(this.#fired, Exit.succeed(reason))
    return true
  }

  /** Fires the quit event if it has not fired, and makes the exit code 1 either way. */
  fail(reason: Reason): void {
    this.failed = true
    this.fire(reason)
  }

  get forced(): Effect.Effect<NodeJS.Signals> {
    return Deferred.await(this.#forced)
  }

  force(signal: NodeJS.Signals): void {
    Deferred.doneUnsafe(this.#forced, Exit.succeed(signal))
  }

  // ---- the registry --------------------------------------------------------

  /** Registers a resource; a name already taken gets a `#2`, `#3` suffix. */
  register(name: string, kind: string, counted: boolean): Entry {
    let unique = name
    for (let i = 2; this.#names.has(unique); i++) unique = `${name}#${i}`
    this.#names.add(unique)
    const entry = new Entry(unique, kind, counted ? new InFlight(unique, this.#context) : undefined)
    if (this.hasFired() && entry.inFlight !== undefined) entry.inFlightAtDrain = 0
    this.entries.push(entry)
    return entry
  }

  find(name: string): Entry | undefined {
    return this.entries.find((entry) => entry.name === name)
  }

  /** The counted group behind `Quit.track(name)`, made on first use. */
  task(name: string): InFlight {
    const existing = this.tasks.get(name)
    if (existing !== undefined) return existing.inFlight
    const entry = this.register(name, "task", true) as Entry & { readonly inFlight: InFlight }
    this.tasks.set(name, entry)
    return entry.inFlight
  }

  /** A stop function or closer for `Shutdown.run` to call; it is not tied to any scope. */
  registerOutsideScope(
    list: "stopFuncs" | "closers",
    name: string,
    run: Effect.Effect<void, unknown>,
    timeout: Duration.Duration
  ): void {
    this[list].push({ entry: this.register(name, list === "closers" ? "closer" : "stop func", false), run, timeout })
  }

  /** Resources not closed yet, in words, with what they still have in flight. */
  stillOpen(): ReadonlyArray<string> {
    return this.entries.filter((entry) => entry.state !== "closed").map((entry) => {
      const count = entry.inFlight?.count ?? 0
      const state = entry.state === "closing" ? "closing" : "not yet closing"
      return `${entry.name} (${entry.kind}, ${state}${count > 0 ? `, ${count} in flight` : ""})`
    })
  }

  rows(): ReadonlyArray<Report.Row> {
    const now = this.now()
    return this.entries.map((entry) => entry.toRow(now))
  }

  // ---- closing -------------------------------------------------------------

  /**
   * Closes one entry: runs `body` under `timeout`, records the outcome and
   * logs a failure (with its cause) or a timeout (by name). Never fails: the
   * other resources still close.
   */
  close(entry: Entry, body: Effect.Effect<Closed, unknown>, timeout: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (entry.state !== "open") return Effect.void
      entry.state = "closing"
      entry.closeStartedAt = this.now()
      Deferred.doneUnsafe(entry.closing, Exit.void)
      if (entry.inFlight !== undefined && entry.inFlightAtDrain === undefined) {
        entry.inFlightAtDrain = entry.inFlight.count
      }
      return bounded(body, timeout).pipe(Effect.flatMap((result) => {
        entry.state = "closed"
        entry.closedAt = this.now()
        entry.inFlightAtEnd = entry.inFlight?.count
        const label = `${entry.name} (${entry.kind})`
        if (result._tag === "TimedOut") {
          entry.outcome = "timed out"
          entry.detail = `abandoned after ${Duration.format(timeout)}`
          return Effect.logWarning(`${label} did not close within ${Duration.format(timeout)}; abandoned`)
        }
        if (Exit.isSuccess(result.exit)) {
          entry.outcome = result.exit.value.outcome
          entry.detail = result.exit.value.detail
          return Effect.void
        }
        entry.outcome = "failed"
        entry.detail = describeCause(result.exit.cause)
        return Effect.logError(`${label} failed to close`, result.exit.cause)
      }))
    })
  }
}

/** How a counted entry drains. @internal */
export interface DrainOptions {
  readonly drainTimeout: Duration.Duration
  readonly closeTimeout: Duration.Duration
  readonly onStop?: Effect.Effect<void, unknown> | undefined
  readonly onCut?: Effect.Effect<void, unknown> | undefined
}

/**
 * Drains a counted entry: stop intake, wait for the count to reach zero up to
 * the drain timeout, then cut what is left. The whole is bounded by drain
 * timeout + close timeout.
 *
 * @internal
 */
export const drain = (quit: QuitImpl, entry: Entry, options: DrainOptions): Effect.Effect<void> => {
  const inFlight = entry.inFlight!
  const body = Effect.gen(function*() {
    if (options.onStop !== undefined) yield* options.onStop
    const idle = yield* Effect.timeoutOption(inFlight.awaitIdle, options.drainTimeout)
    if (idle._tag === "Some") return { outcome: "done" } as const
    const cut = inFlight.cut()
    yield* Effect.logWarning(
      `${entry.name} (${entry.kind}): drain timeout of ${Duration.format(options.drainTimeout)} passed; cutting ${cut} in flight`
    )
    if (options.onCut !== undefined) yield* options.onCut
    yield* inFlight.awaitIdle
    return { outcome: "cut", detail: `${cut} cut at the drain timeout` } as const
  })
  return quit.close(entry, body, Duration.sum(options.drainTimeout, options.closeTimeout))
}

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? error.message : String(error)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}
