/**
 * The quit event: one per process, fired once — by the first signal, by code,
 * or by a failure — and observed by everything that must stop gracefully.
 *
 * It is the Effect form of a Go "quit" package: `HasFired` is
 * {@link hasFired}, `Done()` is {@link fired}, `GracefulStop` is {@link fire}
 * (or {@link trigger} from plain JS), `AddGoroutine`/`DoneGoroutine` become
 * {@link track} and {@link group}, `RegisterStopFunc`/`RegisterCloser` are
 * {@link registerStopFunc}/{@link registerCloser}, and {@link addCloser} is the
 * scoped closer that layers use.
 *
 * The service also keeps the registry behind the shutdown report: every group
 * and closer registered here is a row, with its outcome and in-flight counts.
 *
 * @since 0.1.0
 */
import type { Fiber, Scope } from "effect"
import { Context, Deferred, Effect, Layer, PubSub, Stream } from "effect"
import { dual } from "effect/Function"
import { type CloseFunction, toEffect } from "./internal/close.ts"
import type { InFlight } from "./internal/inFlight.ts"
import * as internal from "./internal/quit.ts"
import * as Options from "./Options.ts"

/**
 * `running → draining → stopping → stopped`, preceded by `starting` while the
 * runner builds the program's layers. Phases only move forward.
 *
 * - `draining`: the quit event fired; readiness reports not-ready; work is
 *   still served through the drain delay.
 * - `stopping`: the program is interrupted; finalizers close listeners, drain
 *   and close resources.
 * - `stopped`: everything closed (or was abandoned); the report is written.
 *
 * @since 0.1.0
 */
export type Phase = internal.Phase

/**
 * A phase and when it began (epoch milliseconds from Effect's `Clock`).
 *
 * @since 0.1.0
 */
export type PhaseChange = internal.PhaseChange

/**
 * Why the quit event fired. A `Failure` makes the exit code 1.
 *
 * @since 0.1.0
 */
export type Reason = internal.Reason

/**
 * The quit event service. Provided by `Main.runMain`; in tests, by
 * {@link layer}. Use the functions of this module rather than its members.
 *
 * @since 0.1.0
 */
export class Quit extends Context.Service<Quit, internal.QuitImpl>()("effect-graceful/Quit") {}

/**
 * Makes a quit event with options from code (no environment). `phase` is where
 * it starts: `running` by default, `starting` when a runner will mark it.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options.Input = {},
  config: { readonly phase?: "starting" | "running" } = {}
): Effect.Effect<internal.QuitImpl, Options.InvalidOption> =>
  Effect.gen(function*() {
    const resolved = yield* Options.fromCode(options)
    const phases = yield* PubSub.unbounded<PhaseChange>({ replay: 1 })
    const clock = yield* Effect.clockWith(Effect.succeed)
    const context = yield* Effect.context<never>()
    return new internal.QuitImpl(resolved, clock, context, phases, config.phase ?? "running")
  })

/**
 * A layer with a fresh quit event, for tests and for programs run without
 * `Main.runMain`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const program = Quit.fire("done").pipe(Effect.provide(Quit.layer({ drainTimeout: "1 second" })))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options.Input = {},
  config: { readonly phase?: "starting" | "running" } = {}
): Layer.Layer<Quit, Options.InvalidOption> => Layer.effect(Quit, make(options, config))

// ---- the event -------------------------------------------------------------

/**
 * Whether the quit event has fired (Go's `HasFired`). Use it in loops:
 * `while (!(yield* Quit.hasFired)) { … }`.
 *
 * @since 0.1.0
 */
export const hasFired: Effect.Effect<boolean, never, Quit> = Quit.use((quit) => Effect.sync(() => quit.hasFired()))

/**
 * Completes with the reason when the quit event fires, at once if it already
 * has (Go's `Done()`). Race it against waiting: `Effect.raceFirst(take, Quit.fired)`.
 *
 * @since 0.1.0
 */
export const fired: Effect.Effect<Reason, never, Quit> = Quit.use((quit) => quit.fired)

/**
 * Fires the quit event from code (Go's `GracefulStop`) with a reason, which the
 * log and the report show. Returns `true` if this call fired it; firing again
 * is harmless, returns `false`, and the first reason is kept.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const onAdminShutdown = Quit.fire("admin requested shutdown")
 * ```
 * @since 0.1.0
 */
export const fire = (reason: string | Reason = "requested"): Effect.Effect<boolean, never, Quit> =>
  Quit.use((quit) => Effect.sync(() => quit.fire(typeof reason === "string" ? requested(reason) : reason)))

/**
 * A plain function that fires the quit event, for code outside Effect — another
 * framework's shutdown hook, a callback API. Safe to call many times.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const program = Effect.gen(function*() {
 *   const stop = yield* Quit.trigger
 *   process.once("message", (m) => m === "shutdown" && stop("parent asked"))
 * })
 * ```
 * @since 0.1.0
 */
export const trigger: Effect.Effect<(reason?: string) => boolean, never, Quit> = Quit.use((quit) =>
  Effect.succeed((reason = "requested") => quit.fire(requested(reason)))
)

/** A reason for a signal. @since 0.1.0 */
export const signal = (signal: NodeJS.Signals): Reason => ({ _tag: "Signal", signal })
/** A reason given by code. @since 0.1.0 */
export const requested = (reason: string): Reason => ({ _tag: "Requested", reason })
/** A reason that makes the exit code 1. @since 0.1.0 */
export const failure = (reason: string, error?: unknown): Reason => ({ _tag: "Failure", reason, error })
/** The reason in words, as logs and the report print it. @since 0.1.0 */
export const describe: (reason: Reason) => string = internal.describeReason

// ---- phases ----------------------------------------------------------------

/**
 * The current phase and when it began.
 *
 * @since 0.1.0
 */
export const phase: Effect.Effect<PhaseChange, never, Quit> = Quit.use((quit) => Effect.sync(() => quit.phase))

/**
 * Every phase reached so far, in order, with the time each began.
 *
 * @since 0.1.0
 */
export const history: Effect.Effect<ReadonlyArray<PhaseChange>, never, Quit> = Quit.use((quit) =>
  Effect.sync(() => [...quit.history])
)

/**
 * The current phase, then every change. Phases move forward only, so the
 * stream ends (by your `takeUntil`) at `stopped` at the latest.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Quit } from "effect-graceful"
 * const logPhases = Quit.phases.pipe(Stream.runForEach((p) => Effect.log(`phase ${p.phase}`)))
 * ```
 * @since 0.1.0
 */
export const phases: Stream.Stream<PhaseChange, never, Quit> = Stream.unwrap(Quit.use((quit) => Effect.succeed(quit.phases)))

/**
 * Marks the program as started: `starting → running`. `Main.runMain` does this
 * when the layers are built; call it yourself only when running without it.
 *
 * @since 0.1.0
 */
export const markRunning: Effect.Effect<boolean, never, Quit> = Quit.use((quit) =>
  Effect.sync(() => quit.setPhase("running"))
)

// ---- in-flight work ----------------------------------------------------------

/**
 * A group of units of work counted under one name: the structural
 * `AddGoroutine`/`DoneGoroutine`. Nobody counts by hand: a unit is counted for
 * exactly as long as it runs.
 *
 * @since 0.1.0
 */
export interface Group {
  readonly name: string
  /** Units in flight now. */
  readonly inFlight: Effect.Effect<number>
  /** Completes the moment no unit is in flight — woken by the count, never polled. */
  readonly awaitIdle: Effect.Effect<void>
  /**
   * Completes when the group begins to close (its scope is closing), whether
   * or not the quit event fired. A work loop checks it between units.
   */
  readonly closing: Effect.Effect<void>
  readonly isClosing: Effect.Effect<boolean>
  /** Runs `unit` counted; the drain timeout may interrupt it. */
  readonly track: <A, E, R>(unit: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Starts `unit` counted in a fiber the group owns: closing the scope does
   * not interrupt it — the group waits for it, and cuts it only at the drain
   * timeout. (`group.track(unit).pipe(Effect.forkScoped)` would instead be
   * interrupted when the scope closes, before the group drains.)
   */
  readonly fork: <A, E, R>(unit: Effect.Effect<A, E, R>) => Effect.Effect<Fiber.Fiber<A, E>, never, R>
  /**
   * Counts one unit from plain JS code (a socket, a callback request); call the
   * returned function when it ends. Calling it twice counts once.
   */
  readonly enterUnsafe: () => () => void
}

const toGroup = (entry: internal.Entry, inFlight: InFlight): Group => ({
  name: entry.name,
  closing: Deferred.await(entry.closing),
  isClosing: Deferred.isDone(entry.closing),
  inFlight: Effect.sync(() => inFlight.count),
  awaitIdle: inFlight.awaitIdle,
  track: (unit) => inFlight.track(unit),
  fork: (unit) => Effect.forkDetach(inFlight.track(unit), { startImmediately: true }),
  enterUnsafe: () => inFlight.enter()
})

/**
 * Options of a {@link group}.
 *
 * @since 0.1.0
 */
export interface GroupOptions {
  /** Shown in the report (`http`, `grpc`, `worker`…). Default `group`. */
  readonly kind?: string | undefined
  /** Overrides the drain timeout of the quit event for this group. */
  readonly drainTimeout?: Options.DurationInput | undefined
  /** Bounds stopping and cutting, on top of the drain timeout. Default: the close timeout. */
  readonly closeTimeout?: Options.DurationInput | undefined
  /** Stops new work from arriving (closes the listener). Runs first on close. */
  readonly onStop?: Effect.Effect<void, unknown> | undefined
  /** Cuts what `track` cannot interrupt (destroys sockets). Runs at the drain timeout. */
  readonly onCut?: Effect.Effect<void, unknown> | undefined
}

/**
 * Registers a group for the lifetime of the current scope. When the scope
 * closes, in this order:
 *
 * 1. `onStop` runs: no new work arrives;
 * 2. it waits until no unit is in flight — done the moment the count is zero;
 * 3. at the drain timeout, units still in flight are cut: fibers running
 *    `track`ed units are interrupted (their finalizers run), `onCut` runs, and
 *    it waits for the count to reach zero;
 * 4. the outcome (`done`, `cut`, `timed out` if even cutting hung past the close
 *    timeout, `failed`) goes to the report.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const jobs = Effect.gen(function*() {
 *   const group = yield* Quit.group("emails", { kind: "worker" })
 *   yield* group.track(Effect.log("sending")).pipe(Effect.forkScoped)
 * })
 * ```
 * @since 0.1.0
 */
export const group = (
  name: string,
  options: GroupOptions = {}
): Effect.Effect<Group, never, Quit | Scope.Scope> =>
  Quit.use((quit) => Effect.suspend(() => {
    const entry = quit.register(name, options.kind ?? "group", true)
    const inFlight = entry.inFlight!
    const drainTimeout = Options.decodeDurationUnsafe(options.drainTimeout, quit.options.drainTimeout, `${name}: drainTimeout`)
    const closeTimeout = Options.decodeDurationUnsafe(options.closeTimeout, quit.options.closeTimeout, `${name}: closeTimeout`)
    return Effect.as(
      Effect.addFinalizer(() =>
        internal.drain(quit, entry, { drainTimeout, closeTimeout, onStop: options.onStop, onCut: options.onCut })
      ),
      toGroup(entry, inFlight)
    )
  }))

/**
 * Runs `unit` counted under `name` for its whole lifetime, in a group made on
 * first use (kind `task`). Unlike a scoped {@link group}, these units are not
 * interrupted by any scope: `Main.runMain` waits for them after the program
 * has stopped, up to the drain timeout, then cuts them.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const sendReceipt = Effect.log("sent").pipe(Quit.track("receipts"), Effect.forkDetach)
 * ```
 * @since 0.1.0
 */
export const track: {
  (name: string): <A, E, R>(unit: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | Quit>
  <A, E, R>(unit: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R | Quit>
} = dual(
  2,
  <A, E, R>(unit: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R | Quit> =>
    Quit.use((quit) => quit.task(name).track(unit))
)

/**
 * Units in flight under `name` (a group, a task, or any counted resource); 0
 * for a name nobody registered.
 *
 * @since 0.1.0
 */
export const inFlight = (name: string): Effect.Effect<number, never, Quit> =>
  Quit.use((quit) => Effect.sync(() => quit.find(name)?.inFlight?.count ?? quit.tasks.get(name)?.inFlight.count ?? 0))

/**
 * Completes the moment `name` has no unit in flight (at once if it has none).
 * Event-driven: the last unit's end wakes it.
 *
 * @since 0.1.0
 */
export const awaitIdle = (name: string): Effect.Effect<void, never, Quit> =>
  Quit.use((quit) => (quit.find(name)?.inFlight ?? quit.tasks.get(name)?.inFlight)?.awaitIdle ?? Effect.void)

// ---- closers -----------------------------------------------------------------

/**
 * Options of closers and stop functions.
 *
 * @since 0.1.0
 */
export interface CloseOptions {
  /** Shown in the report. Default `closer`. */
  readonly kind?: string | undefined
  /** Abandon it after this long. Default: the close timeout (5 s). */
  readonly timeout?: Options.DurationInput | undefined
}

/**
 * Closes `close` when the current scope closes, under its own timeout: a hung
 * close is abandoned at the timeout and logged by name, a failing one is logged
 * with its cause, and neither stops the other finalizers. Use it inside
 * `Layer.effect` so that the close follows the layer graph.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Quit } from "effect-graceful"
 * const pool = { end: async () => {} }
 * const DbLive = Layer.effectDiscard(Quit.addCloser("db", () => pool.end(), { timeout: "2 seconds" }))
 * ```
 * @since 0.1.0
 */
export const addCloser = <E, R>(
  name: string,
  close: CloseFunction<E, R>,
  options: CloseOptions = {}
): Effect.Effect<void, never, Quit | Scope.Scope | R> =>
  Effect.gen(function*() {
    const quit = yield* Quit
    const context = yield* Effect.context<R>()
    const entry = quit.register(name, options.kind ?? "closer", false)
    const timeout = Options.decodeDurationUnsafe(options.timeout, quit.options.closeTimeout, `${name}: timeout`)
    const body = toEffect(close).pipe(Effect.as({ outcome: "done" } as const), Effect.provideContext(context))
    yield* Effect.addFinalizer(() => quit.close(entry, body, timeout))
  })

const registerOutsideScope = (list: "closers" | "stopFuncs") =>
<E>(
  name: string,
  close: CloseFunction<E>,
  options: Omit<CloseOptions, "kind"> = {}
): Effect.Effect<void, never, Quit> =>
  Quit.use((quit) =>
    Effect.sync(() => {
      const timeout = Options.decodeDurationUnsafe(options.timeout, quit.options.closeTimeout, `${name}: timeout`)
      quit.registerOutsideScope(list, name, toEffect(close), timeout)
    })
  )

/**
 * Registers a closer outside any scope (Go's `RegisterCloser`), for code not
 * written as a layer. Closers run after the program has stopped and its
 * layers are released, one at a time, last registered first, each under its
 * own timeout.
 *
 * @example
 * ```ts
 * import { Quit } from "effect-graceful"
 * const tracer = { shutdown: async () => {} }
 * const registerTracer = Quit.registerCloser("tracer", () => tracer.shutdown(), { timeout: "2 seconds" })
 * ```
 * @since 0.1.0
 */
export const registerCloser: <E>(
  name: string,
  close: CloseFunction<E>,
  options?: Omit<CloseOptions, "kind">
) => Effect.Effect<void, never, Quit> = registerOutsideScope("closers")

/**
 * Registers a stop function outside any scope (Go's `RegisterStopFunc`): it
 * runs when stopping begins — after the drain delay, alongside the program's
 * finalizers — under its own timeout. Use it to tell a non-Effect server to
 * stop accepting (`fastify.close`, `server.close`).
 *
 * @example
 * ```ts
 * import { Quit } from "effect-graceful"
 * const legacy = { stopAccepting: () => {} }
 * const registerLegacy = Quit.registerStopFunc("legacy server", () => legacy.stopAccepting())
 * ```
 * @since 0.1.0
 */
export const registerStopFunc: <E>(
  name: string,
  stop: CloseFunction<E>,
  options?: Omit<CloseOptions, "kind">
) => Effect.Effect<void, never, Quit> = registerOutsideScope("stopFuncs")
