/**
 * The machinery of the quit event (its face is `service.ts`): phases,
 * firing, the deadlines fixed at the quit event, the registry behind the
 * shutdown report, and the bounded close every resource goes through.
 *
 * @internal
 */
import type { Clock, Scope } from "effect"
import { Cause, Context, Deferred, Duration, Effect, Exit, Fiber, PubSub, Schedule, Stream } from "effect"
import { bounded } from "./bounded.ts"
import { InFlight } from "./inFlight.ts"
import type { Options } from "./options.ts"
import * as metrics from "./metrics.ts"
import * as progress from "./progress.ts"
import { Readiness } from "./readiness.ts"
import { type Closed, Entry } from "./registry.ts"
import type { Row } from "./report.ts"

export { type Deadline, type Deadlines, describeReason, type Phase, type PhaseChange, Quit, type Reason, type Service } from "./service.ts"
import { type Deadline, type Deadlines, type Phase, type PhaseChange, Quit, type Reason, type Service } from "./service.ts"

const ORDER: Record<Phase, number> = { starting: 0, running: 1, draining: 2, stopping: 3, stopped: 4 }
const PHASES = Object.keys(ORDER) as ReadonlyArray<Phase>

/** A stop function or closer registered outside any scope. @internal */
interface Registered {
  readonly entry: Entry
  readonly run: Effect.Effect<void, unknown>
  readonly timeout: Duration.Duration
}

const RELEASED: Reason = { _tag: "Released" }
const NANOS_PER_MILLI = BigInt(1_000_000)

/** @internal */
export class QuitImpl implements Service {
  readonly options: Options
  readonly #clock: Clock.Clock
  readonly #wallStart: number
  readonly #monotonicStart: bigint
  readonly #runFork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  readonly context: Context.Context<never>
  readonly #phases: PubSub.PubSub<PhaseChange>
  readonly #history: Array<PhaseChange> = []
  /** One per phase, completed when the phase is reached or passed. */
  readonly #reached: { readonly [P in Phase]: Deferred.Deferred<void> } = {
    starting: Deferred.makeUnsafe(),
    running: Deferred.makeUnsafe(),
    draining: Deferred.makeUnsafe(),
    stopping: Deferred.makeUnsafe(),
    stopped: Deferred.makeUnsafe()
  }
  readonly #fired = Deferred.makeUnsafe<Reason>()
  readonly #forced = Deferred.makeUnsafe<NodeJS.Signals>()
  readonly entries: Array<Entry> = []
  readonly #names = new Set<string>()
  readonly stopFuncs: Array<Registered> = []
  readonly closers: Array<Registered> = []
  readonly tasks = new Map<string, Entry & { readonly inFlight: InFlight }>()
  reason: Reason | undefined
  failed = false
  deadlines: Deadlines | undefined
  /**
   * The scope that holds the layer which made this quit event (`Quit.layer`):
   * once it is closing, the program's layers are being released, and the quit
   * event fires if nothing fired it before.
   */
  holder: Scope.Scope | undefined
  /** Checks and the program's own mark, beyond the phase (`Health`). */
  readonly readiness: Readiness
  #keeper: Fiber.Fiber<void> | undefined
  #stopFuncsRun: Fiber.Fiber<void> | undefined
  #finishRun: Fiber.Fiber<void> | undefined

  constructor(options: Options, clock: Clock.Clock, context: Context.Context<never>, phases: PubSub.PubSub<PhaseChange>, initial: Phase) {
    this.options = options
    this.#clock = clock
    this.#wallStart = clock.currentTimeMillisUnsafe()
    this.#monotonicStart = clock.monotonicTimeNanosUnsafe()
    this.context = context
    this.#runFork = Effect.runForkWith(context)
    this.readiness = new Readiness(this.#runFork)
    this.#phases = phases
    this.setPhase(initial)
    metrics.register(this, context)
  }

  /**
   * Epoch milliseconds: the wall clock's reading when the quit event was
   * made, advanced by Effect's monotonic clock — as Go's `time.Now()` carries
   * a monotonic reading, so that a step of the system clock (an NTP
   * correction, a resumed VM) moves no deadline.
   */
  now(): number {
    return this.#wallStart + Number((this.#clock.monotonicTimeNanosUnsafe() - this.#monotonicStart) / NANOS_PER_MILLI)
  }

  /** Milliseconds on Effect's `Clock`, cheaply: for spans measured on the spot, not for deadlines. */
  millis(): number {
    return this.#clock.currentTimeMillisUnsafe()
  }

  // ---- phase ---------------------------------------------------------------

  get phase(): PhaseChange {
    this.fireIfReleased()
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
    for (const p of PHASES) if (ORDER[p] <= ORDER[phase]) Deferred.doneUnsafe(this.#reached[p], Exit.void)
    if (phase === "stopped") this.stopKeeper()
    return true
  }

  /** Completes when `phase` is reached or passed (a program that stops while starting passes `running`). */
  reached(phase: Phase): Effect.Effect<void> {
    return Deferred.await(this.#reached[phase])
  }

  // ---- progress ------------------------------------------------------------

  /** What the shutdown still waits on; `undefined` before the quit event. */
  progress(): progress.Progress | undefined {
    const deadlines = this.deadlines
    return deadlines === undefined ? undefined : progress.snapshot({ entries: this.entries, deadlines, now: this.now() })
  }

  /** From the quit event: the progress at once, then every `every`, until phase `stopped`. */
  progressEvery(every: Duration.Duration): Stream.Stream<progress.Progress> {
    const tick = Effect.sync(() => this.progress()!)
    return Stream.unwrap(Effect.as(this.fired, Stream.fromEffectSchedule(tick, Schedule.spaced(every)))).pipe(
      Stream.interruptWhen(this.reached("stopped"))
    )
  }

  // Every `progressInterval` from the quit event, a line saying what is still open.
  #logProgress(): Effect.Effect<void> {
    const every = this.options.progressInterval
    if (Duration.isZero(every)) return Effect.void
    return Effect.forever(Effect.andThen(Effect.sleep(every), Effect.suspend(() => Effect.logInfo(progress.describe(this.progress()!)))))
  }

  // ---- the quit event ------------------------------------------------------

  readonly hasFired = (): boolean => {
    this.fireIfReleased()
    return this.reason !== undefined
  }

  get fired(): Effect.Effect<Reason> {
    return Deferred.await(this.#fired)
  }

  /** The quit event fires at the latest when the layers of the program begin to be released. */
  fireIfReleased(): void {
    if (this.reason === undefined && this.holder !== undefined && this.holder.state._tag === "Closed") this.fire(RELEASED)
  }

  /**
   * Fires once; later calls are harmless and return false. Fixes the
   * deadlines: the drain delay is skipped when nothing can have been routed
   * here (the program was still starting), or nothing is left to serve
   * (`immediate`: the program has ended).
   */
  readonly fire = (reason: Reason, options: { readonly immediate?: boolean } = {}): boolean => {
    if (this.reason !== undefined) return false
    this.reason = reason
    if (reason._tag === "Failure") this.failed = true
    const fired = this.now()
    const { closeTimeout, drainDelay, drainTimeout, shutdownTimeout } = this.options
    const delayed = options.immediate !== true && this.#history[this.#history.length - 1]!.phase !== "starting"
    const stopping = fired + (delayed ? Duration.toMillis(drainDelay) : 0)
    const drain = stopping + Duration.toMillis(drainTimeout)
    this.deadlines = {
      fired,
      stopping,
      drain,
      close: drain + Duration.toMillis(closeTimeout),
      shutdown: fired + Duration.toMillis(shutdownTimeout)
    }
    for (const entry of this.entries) {
      if (entry.inFlight !== undefined && entry.inFlightAtDrain === undefined) entry.inFlightAtDrain = entry.inFlight.count
    }
    this.setPhase("draining")
    Deferred.doneUnsafe(this.#fired, Exit.succeed(reason))
    for (const entry of this.entries) this.#callOnFire(entry)
    // No drain delay: the listeners close in this very call, before the event
    // loop polls for connections again.
    if (this.deadlines.stopping <= fired) this.beginStopping()
    this.#keeper = this.#runFork(
      Effect.all([this.#keep(this.deadlines), this.#logProgress()], { concurrency: "unbounded", discard: true })
    )
    return true
  }

  /** Fires the quit event if it has not fired, and makes the exit code 1 either way. */
  fail(reason: Reason, options: { readonly immediate?: boolean } = {}): void {
    this.failed = true
    this.fire(reason, options)
  }

  get forced(): Effect.Effect<NodeJS.Signals> {
    return Deferred.await(this.#forced)
  }

  force(signal: NodeJS.Signals): void {
    Deferred.doneUnsafe(this.#forced, Exit.succeed(signal))
  }

  // The shared instants, whoever runs the program: phase `stopping` and the
  // stop functions at the end of the drain delay, the cut at the drain
  // deadline — for every group, wherever it sits in the layer graph.
  #keep(deadlines: Deadlines): Effect.Effect<void> {
    return this.sleepUntil(deadlines.stopping).pipe(
      Effect.andThen(Effect.sync(() => this.beginStopping())),
      Effect.andThen(this.sleepUntil(deadlines.drain)),
      Effect.andThen(Effect.suspend(() =>
        // Whatever is in flight, also in a group already abandoned at a close
        // deadline that falls on this same instant (a close timeout of 0).
        Effect.forEach(
          this.entries.filter((entry) => entry.inFlight !== undefined && entry.inFlight.count > 0),
          (entry) => this.cut(entry, "at the drain deadline"),
          { concurrency: "unbounded", discard: true }
        )
      ))
    )
  }

  // The end of the drain delay, once: phase `stopping`, then each entry's
  // `onStopping` (a listener closes) in this same turn, then the stop functions.
  beginStopping(): void {
    if (!this.setPhase("stopping")) return
    for (const entry of this.entries) this.#callOnStopping(entry)
    this.#startStopFuncs()
  }

  /** Stops what the quit event started, once everything is closed. */
  stopKeeper(): void {
    this.#keeper?.interruptUnsafe()
  }

  // ---- time ----------------------------------------------------------------

  /** Sleeps until `at` (epoch milliseconds; at once if it has passed). */
  sleepUntil(at: number): Effect.Effect<void> {
    return Effect.suspend(() => at === Infinity ? Effect.never : Effect.sleep(Duration.millis(Math.max(0, at - this.now()))))
  }

  /**
   * Sleeps until `at`, or until the shared `deadline` if that comes first —
   * also when the quit event fires meanwhile: a component may end sooner
   * than the shared deadline, never later.
   */
  until(at: number, deadline: Deadline): Effect.Effect<void> {
    return Effect.suspend(() => {
      const fixed = this.deadlines
      if (fixed !== undefined) return this.sleepUntil(Math.min(at, fixed[deadline]))
      return Effect.raceFirst(
        this.sleepUntil(at),
        Effect.andThen(this.fired, Effect.suspend(() => this.sleepUntil(Math.min(at, this.deadlines![deadline]))))
      )
    })
  }

  /** Completes at the end of the drain delay; at once if the quit event has not fired. */
  get awaitStopping(): Effect.Effect<void> {
    return Effect.suspend(() => this.deadlines === undefined ? Effect.void : this.sleepUntil(this.deadlines.stopping))
  }

  /** Runs `f` after `millis` on the quit event's clock (`TestClock` in tests); the returned function cancels it. */
  schedule(millis: number, f: () => void): () => void {
    const fiber = this.#runFork(Effect.andThen(Effect.sleep(Duration.millis(millis)), Effect.sync(f)))
    return () => fiber.interruptUnsafe()
  }

  /** Time left until `deadline`; before the quit event, the whole span as if it fired now. */
  timeLeft(deadline: Deadline): Duration.Duration {
    const now = this.now()
    if (this.deadlines !== undefined) return Duration.millis(Math.max(0, this.deadlines[deadline] - now))
    const { closeTimeout, drainDelay, drainTimeout, shutdownTimeout } = this.options
    const spans = { stopping: drainDelay, drain: Duration.sum(drainDelay, drainTimeout) } as const
    if (deadline === "stopping" || deadline === "drain") return spans[deadline]
    return deadline === "close" ? Duration.sum(spans.drain, closeTimeout) : shutdownTimeout
  }

  // ---- the registry --------------------------------------------------------

  /**
   * Calls `f` the moment the quit event fires — at once if it has — for as
   * long as `entry` is registered: in `fire` itself, not a turn later, so
   * that it holds whatever fires it (a signal, code, the first finalizer of
   * the layers, this entry's own).
   */
  onFire(entry: Entry, f: () => void): void {
    entry.onFire = f
    if (this.reason !== undefined) this.#callOnFire(entry)
  }

  /** Calls `f` the moment the drain delay ends — at once if it has — for as long as `entry` is registered. */
  onStopping(entry: Entry, f: () => void): void {
    entry.onStopping = f
    const current = this.#history[this.#history.length - 1]
    if (current !== undefined && ORDER[current.phase] >= ORDER.stopping) this.#callOnStopping(entry)
  }

  #callOnStopping(entry: Entry): void {
    const f = entry.onStopping
    if (f === undefined) return
    entry.onStopping = undefined
    try {
      f()
    } catch (error) {
      this.#runFork(Effect.logError(`${entry.label}: stopping failed`, Cause.die(error)))
    }
  }

  #callOnFire(entry: Entry): void {
    const f = entry.onFire
    if (f === undefined) return
    entry.onFire = undefined
    try {
      f()
    } catch (error) {
      this.#runFork(Effect.logError(`${entry.label}: reacting to the quit event failed`, Cause.die(error)))
    }
  }

  /** Registers a resource; a name already taken gets a `#2`, `#3` suffix. */
  register(name: string, kind: string, counted: boolean, onCut?: Effect.Effect<void, unknown>): Entry {
    let unique = name
    for (let i = 2; this.#names.has(unique); i++) unique = `${name}#${i}`
    this.#names.add(unique)
    const entry = new Entry(unique, kind, counted ? new InFlight(unique, this.context) : undefined, onCut)
    if (this.reason !== undefined && entry.inFlight !== undefined) entry.inFlightAtDrain = 0
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

  /** A stop function or closer that no scope closes: the runner (or `Quit.layer`) runs it. */
  registerOutsideScope(list: "stopFuncs" | "closers", name: string, run: Effect.Effect<void, unknown>, timeout: Duration.Duration): void {
    this[list].push({ entry: this.register(name, list === "closers" ? "closer" : "stop func", false), run, timeout })
  }

  /** Resources not closed yet, in words, with what they still have in flight. */
  stillOpen(): ReadonlyArray<string> {
    return this.entries.filter((entry) => entry.state !== "closed").map((entry) => entry.describeOpen())
  }

  rows(): ReadonlyArray<Row> {
    const now = this.now()
    return this.entries.map((entry) => entry.toRow(now))
  }

  // ---- cutting and closing -------------------------------------------------

  /**
   * Cuts the units of `entry` still in flight, once: interrupts their fibers
   * at once, then runs its `onCut` in a fiber of its own (it may wait on
   * uninterruptible work) and completes when that ends.
   */
  cut(entry: Entry, why: string): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (entry.inFlight === undefined) return Effect.void
      // A second cut reaches only what came since the first (a unit taken
      // after it); with nothing new it waits for the first one's `onCut`.
      const count = entry.inFlight.cut((fresh) => {
        if (fresh > 0) entry.cut = { count: (entry.cut?.count ?? 0) + fresh, why: entry.cut?.why ?? why }
      })
      if (count === 0) return entry.cutting ?? Effect.void
      const onCut = entry.onCut === undefined
        ? Effect.void
        : Effect.catchCause(entry.onCut, (cause) => Effect.logError(`${entry.label}: cutting failed`, cause))
      const fiber = this.#runFork(onCut)
      const cutting = Effect.asVoid(Fiber.await(fiber))
      entry.cutting = cutting
      return Effect.andThen(Effect.logWarning(`${entry.label}: cutting ${count} in flight ${why}`), cutting)
    })
  }

  /**
   * Closes one entry: runs `body`, abandoning it `limit` from now or at the
   * close deadline, whichever comes first; records the outcome and logs a
   * failure (with its cause) or an abandon (by name). Never fails: the other
   * resources still close.
   */
  close(entry: Entry, body: Effect.Effect<Closed, unknown>, limit: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (entry.state !== "open") return Effect.void
      this.fireIfReleased()
      entry.state = "closing"
      const started = entry.closeStartedAt = this.now()
      if (entry.inFlight === undefined) entry.markClosing()
      else if (entry.inFlightAtDrain === undefined) entry.inFlightAtDrain = entry.inFlight.count
      const at = started + Duration.toMillis(limit)
      return bounded(body, this.until(at, "close")).pipe(Effect.flatMap((result) => {
        entry.state = "closed"
        entry.closedAt = this.now()
        entry.inFlightAtEnd = entry.inFlight?.count
        if (result._tag === "TimedOut") {
          const atDeadline = this.deadlines !== undefined && this.deadlines.close <= at
          entry.outcome = "timed out"
          entry.detail = atDeadline ? "abandoned at the close deadline" : `abandoned after ${Duration.format(limit)}`
          // Abandoned, but what it still has in flight is cut all the same (at
          // once, not waited for): with no close timeout, the close deadline
          // is the drain deadline, and this may come first.
          const cut = entry.inFlight !== undefined && entry.inFlight.count > 0 && this.deadlines !== undefined &&
              this.now() >= this.deadlines.drain
            ? Effect.forkDetach(this.cut(entry, "at the drain deadline"), { startImmediately: true })
            : Effect.void
          return Effect.andThen(
            cut,
            Effect.logWarning(`${entry.label} did not close ${atDeadline ? "by the close deadline" : `within ${Duration.format(limit)}`}; abandoned`)
          )
        }
        if (Exit.isSuccess(result.exit)) {
          entry.outcome = result.exit.value.outcome
          entry.detail = result.exit.value.detail
          return Effect.void
        }
        entry.outcome = "failed"
        entry.detail = describeCause(result.exit.cause)
        return Effect.logError(`${entry.label} failed to close`, result.exit.cause)
      }), Effect.ensuring(Effect.sync(() => this.forget(entry))))
    })
  }

  /**
   * A resource closed while the program runs on (no quit event: a group per
   * tenant or per connection) leaves nothing behind — no row, no name, no
   * metric series. Closed as part of a shutdown, or while the program is still
   * starting (a start that fails releases what it acquired before anyone fires
   * the quit event), it stays for the report.
   */
  forget(entry: Entry): void {
    if (this.reason !== undefined || this.#history[this.#history.length - 1]?.phase === "starting") return
    const index = this.entries.indexOf(entry)
    if (index !== -1) this.entries.splice(index, 1)
    this.#names.delete(entry.name)
    entry.inFlight?.unregister()
  }

  /** The stop functions, run once at the end of the drain delay, concurrently; completes when all have. */
  get runStopFuncs(): Effect.Effect<void> {
    return Effect.suspend(() => this.stopFuncs.length === 0 ? Effect.void : Fiber.await(this.#startStopFuncs()).pipe(Effect.asVoid))
  }

  #startStopFuncs(): Fiber.Fiber<void> {
    return this.#stopFuncsRun ??= this.#runFork(
      Effect.forEach(this.stopFuncs, (stop) => this.close(stop.entry, done(stop.run), stop.timeout), {
        concurrency: "unbounded",
        discard: true
      })
    )
  }

  /**
   * What no scope closes, once the program has stopped: the units counted
   * with `Quit.track` (cut at the drain deadline), then the closers registered
   * outside any scope, last registered first.
   */
  finish(drainTask: (entry: Entry) => Effect.Effect<void>): Effect.Effect<void> {
    // First a turn of the scheduler: a unit the program forked as its last
    // step (`Quit.track` then `Effect.forkDetach`) is counted when its fiber
    // starts, which is then.
    return Effect.andThen(Effect.yieldNow, Effect.suspend(() => {
      // Nothing outside any scope: nothing to wait for (the common case).
      if (this.stopFuncs.length === 0 && this.tasks.size === 0 && this.closers.length === 0) return Effect.void
      const finishing = this.#finishRun ??= this.#runFork(this.runStopFuncs.pipe(
        Effect.andThen(Effect.forEach(this.tasks.values(), drainTask, { concurrency: "unbounded", discard: true })),
        Effect.andThen(Effect.suspend(() =>
          Effect.forEach([...this.closers].reverse(), (closer) => this.close(closer.entry, done(closer.run), closer.timeout), {
            discard: true
          })
        ))
      ))
      return Fiber.await(finishing).pipe(Effect.asVoid)
    }))
  }
}

const done = (run: Effect.Effect<void, unknown>) => Effect.as(run, { outcome: "done" } as const)

/** A cause in a few words, for the report. @internal */
export const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? error.message : String(error)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/** The implementation behind a `Quit` service; a foreign one is a defect. @internal */
export const impl = (quit: Service): QuitImpl => {
  if (quit instanceof QuitImpl) return quit
  throw new Error("effect-graceful: this Quit service was not made by Quit.layer, Quit.make or Main.runMain")
}

/** What a program without a quit event is told. @internal */
export const MISSING = "effect-graceful: no quit event here (service effect-graceful/Quit not found): run the program " +
  "with Main.runMain, or provide Quit.layer() to it under another runner (NodeRuntime.runMain, a test)"

/**
 * The implementation of the `Quit` service in context. Typed as needing it;
 * should a program get here without it all the same (a layer provided to one
 * branch only, a cast), the defect says how to provide it.
 *
 * @internal
 */
export const current: Effect.Effect<QuitImpl, never, Quit> = Effect.flatMap(
  Effect.serviceOption(Quit),
  (quit) => quit._tag === "Some" ? Effect.sync(() => impl(quit.value)) : Effect.die(new Error(MISSING))
)
