/**
 * The quit event's state: its clock, its phases, whether it has fired (and
 * the deadlines fixed then), its registry, readiness, and the scope that owns
 * its background fibers. What happens when it fires, and in which order, is
 * `sequence.ts`'s: this module holds no step of the shutdown.
 *
 * @internal
 */
import type { Context, Duration, Fiber } from "effect"
import { Deferred, Effect, Exit, FiberSet, PubSub, Scope } from "effect"
import { QuitClock } from "./clock.ts"
import type { Deadline, Deadlines } from "./deadlines.ts"
import * as deadlines_ from "./deadlines.ts"
import { InFlight } from "./inFlight.ts"
import * as metrics from "./metrics.ts"
import type { Options } from "./options.ts"
import { isAtLeast, type Phase, type PhaseChange, Phases } from "./phases.ts"
import { Readiness } from "./readiness.ts"
import { Routing } from "./routing.ts"
import { Counted, Entry, Registry } from "./registry.ts"
import type { Row } from "./report.ts"
import { type Reason, Quit, type Service, TypeId } from "./service.ts"

export { describeReason, Quit, type Reason, type Service } from "./service.ts"
export type { Deadline, Deadlines } from "./deadlines.ts"
export type { Phase, PhaseChange } from "./phases.ts"

/** The quit event once fired: why, and the instants fixed then. @internal */
export interface Fired {
  readonly _tag: "Fired"
  readonly reason: Reason
  readonly deadlines: Deadlines
}

/** Whether the quit event has fired. @internal */
export type Firing = { readonly _tag: "Waiting" } | Fired

/** A stop function or closer registered outside any scope: the runner (or `Quit.layer`) runs it. @internal */
export interface Registered {
  readonly entry: Entry
  readonly run: Effect.Effect<void, unknown>
  readonly timeout: Duration.Duration
}

/** @internal */
export class QuitImpl implements Service {
  readonly [TypeId]: typeof TypeId = TypeId
  readonly options: Options
  readonly clock: QuitClock
  readonly phases: Phases
  readonly registry = new Registry()
  /** What it sees of the balancers routing here: for an automatic drain delay. */
  readonly routing = new Routing()
  readonly readiness: Readiness
  /** The services it runs its own fibers and log lines with (the logger of the layers built on it). */
  readonly context: Context.Context<never>
  /**
   * The scope that holds the layer which made it (`Quit.layer`): once that
   * begins to close, the program's layers are being released, and the quit
   * event fires if nothing fired it before.
   */
  readonly holder: Scope.Scope | undefined
  readonly #scope: Scope.Closeable
  readonly #run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  #firing: Firing = { _tag: "Waiting" }
  readonly #fired = Deferred.makeUnsafe<Fired>()
  readonly #forced = Deferred.makeUnsafe<NodeJS.Signals>()
  readonly #stopping = Deferred.makeUnsafe<void>()
  /** A failure was seen: the exit code is 1, whatever fired the quit event. */
  failed = false
  readonly stopFuncs: Array<Registered> = []
  readonly closers: Array<Registered> = []
  readonly tasks = new Map<string, Counted>()

  constructor(
    options: Options,
    clock: QuitClock,
    context: Context.Context<never>,
    changes: PubSub.PubSub<PhaseChange>,
    initial: Phase,
    fibers: { readonly scope: Scope.Closeable; readonly run: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E> },
    holder: Scope.Scope | undefined
  ) {
    this.options = options
    this.clock = clock
    this.context = context
    this.#scope = fibers.scope
    this.#run = fibers.run
    this.holder = holder
    this.readiness = new Readiness(this.#run)
    this.phases = new Phases({ phase: initial, at: clock.now() }, changes)
    metrics.register(this, context)
  }

  // ---- time ------------------------------------------------------------------

  now(): number {
    return this.clock.now()
  }

  millis(): number {
    return this.clock.millis()
  }

  sleepUntil(at: number): Effect.Effect<void> {
    return this.clock.sleepUntil(at)
  }

  /**
   * Sleeps until `at`, or until the shared `deadline` if that comes first —
   * also when the quit event fires meanwhile: a component may end sooner
   * than the shared deadline, never later.
   */
  until(at: number, deadline: Deadline): Effect.Effect<void> {
    return Effect.suspend(() => {
      const firing = this.#firing
      if (firing._tag === "Fired") return this.sleepUntil(Math.min(at, firing.deadlines[deadline]))
      return Effect.raceFirst(
        this.sleepUntil(at),
        Effect.andThen(Deferred.await(this.#fired), Effect.suspend(() => this.until(at, deadline)))
      )
    })
  }

  /**
   * Completes at the end of the drain delay — when `sequence.beginStopping`
   * ran, or at the `stopping` deadline (its maximum) all the same; at once if
   * the quit event has not fired.
   */
  get awaitStopping(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const firing = this.#firing
      if (firing._tag === "Waiting") return Effect.void
      return Effect.raceFirst(Deferred.await(this.#stopping), this.sleepUntil(firing.deadlines.stopping))
    })
  }

  /** The drain delay has ended: called once, by `sequence.beginStopping`. */
  markStopping(): void {
    Deferred.doneUnsafe(this.#stopping, Exit.void)
  }

  /** Time left until `deadline`; before the quit event, the whole span as if it fired now. */
  timeLeft(deadline: Deadline): Duration.Duration {
    const firing = this.#firing
    if (firing._tag === "Waiting") return deadlines_.span(this.options, deadline)
    return deadlines_.remaining(firing.deadlines, deadline, this.now())
  }

  // ---- its own fibers ---------------------------------------------------------

  /** Runs `effect` in a fiber of the quit event's own, interrupted when it ends. */
  fork<A, E>(effect: Effect.Effect<A, E>): Fiber.Fiber<A, E> {
    return this.#run(effect)
  }

  /** Runs `f` after `millis` on the quit event's clock (`TestClock` in tests); the returned function cancels it. */
  schedule(millis: number, f: () => void): () => void {
    const fiber = this.#run(Effect.andThen(Effect.sleep(millis), Effect.sync(f)))
    return () => fiber.interruptUnsafe()
  }

  /** Ends its fibers: the shutdown is over. */
  end(): void {
    Effect.runFork(Scope.close(this.#scope, Exit.void))
  }

  // ---- phases -----------------------------------------------------------------

  get phase(): PhaseChange {
    return this.phases.current
  }

  get history(): ReadonlyArray<PhaseChange> {
    return this.phases.history
  }

  /** Moves forward only: a late `running` after the quit event is ignored. */
  setPhase(phase: Phase): boolean {
    return this.phases.advance(phase, this.now())
  }

  reached(phase: Phase): Effect.Effect<void> {
    return this.phases.reached(phase)
  }

  isAtLeast(phase: Phase): boolean {
    return isAtLeast(this.phases.current.phase, phase)
  }

  // ---- the quit event ---------------------------------------------------------

  get firing(): Firing {
    return this.#firing
  }

  get reason(): Reason | undefined {
    return this.#firing._tag === "Fired" ? this.#firing.reason : undefined
  }

  get deadlines(): Deadlines | undefined {
    return this.#firing._tag === "Fired" ? this.#firing.deadlines : undefined
  }

  /** Completes with the reason when the quit event fires, at once if it has. */
  get fired(): Effect.Effect<Reason> {
    return Effect.map(Deferred.await(this.#fired), (fired) => fired.reason)
  }

  /** Completes with the reason and the deadlines when the quit event fires, at once if it has. */
  get whenFired(): Effect.Effect<Fired> {
    return Deferred.await(this.#fired)
  }

  hasFired(): boolean {
    return this.#firing._tag === "Fired"
  }

  /** Whether the layers that hold it are being released (the quit event fires then, at the latest). */
  get released(): boolean {
    return this.holder !== undefined && this.holder.state._tag === "Closed"
  }

  /** Records the quit event: called once, by `sequence.fire`. */
  markFired(reason: Reason, deadlines: Deadlines): void {
    const fired: Fired = { _tag: "Fired", reason, deadlines }
    this.#firing = fired
    this.routing.fire(deadlines.fired)
    if (reason._tag === "Failure") this.failed = true
    for (const group of this.registry.counted()) group.noteAtDrain()
    this.phases.advance("draining", deadlines.fired)
    Deferred.doneUnsafe(this.#fired, Exit.succeed(fired))
  }

  get forced(): Effect.Effect<NodeJS.Signals> {
    return Deferred.await(this.#forced)
  }

  force(signal: NodeJS.Signals): void {
    Deferred.doneUnsafe(this.#forced, Exit.succeed(signal))
  }

  // ---- the registry -----------------------------------------------------------

  /** A group: its units are counted. */
  registerGroup(name: string, kind: string, onCut?: Effect.Effect<void, unknown>): Counted {
    const unique = this.registry.unique(name)
    const group = new Counted(unique, kind, new InFlight(unique, this.context), onCut)
    if (this.hasFired()) group.atDrain = 0
    return this.registry.add(group)
  }

  /** A closer or a stop function. */
  registerPlain(name: string, kind: string): Entry {
    return this.registry.add(new Entry(this.registry.unique(name), kind))
  }

  /** The counted group behind `Quit.track(name)`, made on first use. */
  task(name: string): InFlight {
    const existing = this.tasks.get(name)
    if (existing !== undefined) return existing.inFlight
    const group = this.registerGroup(name, "task")
    this.tasks.set(name, group)
    return group.inFlight
  }

  /** A stop function or closer that no scope closes: the runner (or `Quit.layer`) runs it. */
  registerOutsideScope(list: "stopFuncs" | "closers", name: string, run: Effect.Effect<void, unknown>, timeout: Registered["timeout"]): void {
    this[list].push({ entry: this.registerPlain(name, list === "closers" ? "closer" : "stop func"), run, timeout })
  }

  /**
   * A resource closed while the program runs on (no quit event: a group per
   * tenant or per connection) leaves nothing behind — no row, no name, no
   * metric series. Closed as part of a shutdown, or while the program is still
   * starting (a start that fails releases what it acquired before anyone fires
   * the quit event), it stays for the report.
   */
  forget(entry: Entry): void {
    if (this.hasFired() || this.phases.current.phase === "starting") return
    this.registry.remove(entry)
    if (entry instanceof Counted) entry.inFlight.unregister()
  }

  stillOpen(): ReadonlyArray<string> {
    return this.registry.stillOpen()
  }

  rows(): ReadonlyArray<Row> {
    return this.registry.rows(this.now())
  }
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

/**
 * Makes a quit event in phase `initial`, with the services in context (its
 * logger) and a scope of its own for its fibers.
 *
 * @internal
 */
export const make = (options: Options, initial: Phase, holder?: Scope.Scope): Effect.Effect<QuitImpl> =>
  Effect.gen(function*() {
    const changes = yield* PubSub.unbounded<PhaseChange>({ replay: 1 })
    const clock = new QuitClock(yield* Effect.clockWith(Effect.succeed))
    const context = yield* Effect.context<never>()
    // Its own fibers (timers, the cut, its log lines) live in a scope of its own, closed when it ends.
    const scope = Scope.makeUnsafe()
    const run = yield* Scope.provide(FiberSet.makeRuntime<never, unknown, unknown>(), scope)
    return new QuitImpl(options, clock, context, changes, initial, { scope, run }, holder)
  })
