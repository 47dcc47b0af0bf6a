/**
 * The quit event: one per process, fired once — by the first signal, by code,
 * by a failure, or at the latest when the program's layers begin to be
 * released — and observed by everything that must stop gracefully.
 *
 * It is the Effect form of a Go "quit" package: `HasFired` is
 * {@link hasFired}, `Done()` is {@link fired}, `GracefulStop` is {@link fire}
 * (or {@link trigger} from plain JS), `AddGoroutine`/`DoneGoroutine` become
 * {@link track} and {@link group}, `RegisterStopFunc`/`RegisterCloser` are
 * {@link registerStopFunc}/{@link registerCloser}; the scoped closes that
 * layers use are the `Closer` module's. Like a Go `context` handed to every
 * `Shutdown`, the quit event fixes the {@link Deadlines} when it fires, and
 * every component reads them.
 *
 * `Main.runMain` provides it; under any other runner (`NodeRuntime.runMain`,
 * `Layer.launch` with `Effect.runFork`, `ManagedRuntime`, tests) provide
 * {@link layer}.
 *
 * @since 0.1.0
 */
import type { Layer, Scope } from "effect"
import { Duration, Effect, Fiber, Option, Stream } from "effect"
import { dual } from "effect/Function"
import { type CloseFunction, toEffect } from "./internal/core/close.ts"
import * as closers from "./internal/core/closers.ts"
import * as group_ from "./internal/core/group.ts"
import * as layer_ from "./internal/core/layer.ts"
import * as options_ from "./internal/core/options.ts"
import type * as progress_ from "./internal/core/progress.ts"
import * as internal from "./internal/core/quit.ts"
import { Counted } from "./internal/core/registry.ts"
import * as sequence from "./internal/core/sequence.ts"
import type * as Options from "./Options.ts"

/**
 * `starting → running → draining → stopping → stopped`. Phases only move forward.
 *
 * - `starting`: `Main.runMain` builds the layers; readiness says not-ready.
 * - `running`: ready for traffic.
 * - `draining`: the quit event fired; readiness says not-ready; work is still
 *   served through the drain delay.
 * - `stopping`: the drain delay ended; listeners close, groups drain, closers close.
 * - `stopped`: everything closed (or was abandoned); the report is written.
 *
 * @category models
 * @since 0.1.0
 */
export type Phase = internal.Phase

/** A phase and when it began (epoch milliseconds from Effect's `Clock`). @category models @since 0.1.0 */
export type PhaseChange = internal.PhaseChange

/**
 * Why the quit event fired. A `Failure` makes the exit code 1; `Released`
 * means the layers were released with no other reason (a runner's
 * interruption, `ManagedRuntime.dispose`, a test's scope); `Host` is a host
 * asking the service to stop (memory pressure: see `Memory`), with the exit
 * code `Main.runMain` uses when the shutdown went well (75).
 *
 * @category models
 * @since 0.1.0
 */
export type Reason = internal.Reason

/** The instants fixed at the quit event; see {@link deadlines}. @category models @since 0.1.0 */
export type Deadlines = internal.Deadlines

/** A deadline by the moment it names: `stopping`, `drain`, `close`, `shutdown`. @category models @since 0.1.0 */
export type Deadline = internal.Deadline

/** The quit event service, opaque: read it with this module's functions. @category models @since 0.1.0 */
export type Service = internal.Service

/**
 * The quit event service. Provided by `Main.runMain` and by {@link layer}.
 * Use the functions of this module rather than its members.
 *
 * @category services
 * @since 0.1.0
 */
export const Quit: typeof internal.Quit = internal.Quit
/** @category models @since 0.1.0 */
export type Quit = internal.Quit

/**
 * The quit event for any runner but `Main.runMain`. It reads the same options
 * as `Main.runMain` — the environment (`DRAIN_DELAY`, `DRAIN_TIMEOUT`,
 * `CLOSE_TIMEOUT`, `SHUTDOWN_TIMEOUT`, `SHUTDOWN_SIGNALS`, `LOG_FORMAT`, through
 * `Config`) over `options` — and fails with `InvalidOption` before anything is
 * acquired when they cannot hold. Then:
 *
 * - the first of the signals fires the quit event (before the runner's own
 *   listener interrupts the program); a signal nothing else listens to ends
 *   the process as Node would;
 * - at the latest, the first graceful finalizer (a group, a server, a closer)
 *   fires it when the layers built on this one begin to be released;
 * - every server waits out the drain delay before its listener closes, every
 *   group is cut at the drain deadline and every closer abandoned by the close
 *   deadline — as under `Main.runMain`;
 * - when the layers are released: the units of {@link track} are drained, the
 *   closers of {@link registerCloser} run, the phase becomes `stopped`.
 *
 * The report, the exit code, the second signal and the exit at the shutdown
 * deadline are `Main.runMain`'s: options that ask for them are named in one
 * warning at start. Inside `Main.runMain` it is the runner's quit event (and
 * refuses options other than the runner's). `phase: "starting"` makes
 * readiness wait for {@link markRunning}.
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 * import { createServer } from "node:http"
 * import { Closer, Http, Quit } from "effect-graceful"
 * const Web = Http.layerNode(() => createServer((_req, res) => res.end("hello")), { port: 8080, health: true })
 * const App = Web.pipe(Layer.provide(Closer.layerDiscard("db", Effect.log("db closed"))))
 * NodeRuntime.runMain(Layer.launch(App.pipe(Layer.provide(Quit.layer({ drainDelay: "5 seconds" })))))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer: (
  options?: Options.Input,
  config?: { readonly phase?: "starting" | "running" }
) => Layer.Layer<Quit, Options.InvalidOption> = layer_.layer

/**
 * A quit event from `options` alone (no environment, no signals), for
 * embedding and tests that drive it by hand.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options.Input = {},
  config: { readonly phase?: "starting" | "running" } = {}
): Effect.Effect<Service, Options.InvalidOption> =>
  Effect.flatMap(options_.fromCode(options), (resolved) => layer_.make(resolved, config.phase))

// ---- the event -------------------------------------------------------------

/**
 * Whether the quit event has fired (Go's `HasFired`). Use it in loops:
 * `while (!(yield* Quit.hasFired)) { … }`.
 *
 * @category combinators
 * @since 0.1.0
 */
export const hasFired: Effect.Effect<boolean, never, Quit> = Effect.map(internal.current, sequence.hasFired)

/**
 * Completes with the reason when the quit event fires, at once if it already
 * has (Go's `Done()`). Race it against waiting: `Effect.raceFirst(take, Quit.fired)`.
 *
 * @category combinators
 * @since 0.1.0
 */
export const fired: Effect.Effect<Reason, never, Quit> = Effect.flatMap(internal.current, (quit) => quit.fired)

/**
 * Fires the quit event from code (Go's `GracefulStop`) with a reason, which the
 * log and the report show. Returns `true` if this call fired it; firing again
 * is harmless, returns `false`, and the first reason is kept.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const program = Effect.gen(function*() {
 *   const first = yield* Quit.fire("admin requested shutdown")
 *   const again = yield* Quit.fire("again")
 *   console.log(first, again) // true false
 * }).pipe(Effect.provide(Quit.layer()))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const fire = (reason: string | Reason = "requested"): Effect.Effect<boolean, never, Quit> =>
  Effect.map(internal.current, (quit) => sequence.fire(quit, typeof reason === "string" ? { _tag: "Requested", reason } : reason))

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
 * @category combinators
 * @since 0.1.0
 */
export const trigger: Effect.Effect<(reason?: string) => boolean, never, Quit> = Effect.flatMap(internal.current, (quit) =>
  Effect.succeed((reason = "requested") => sequence.fire(quit, { _tag: "Requested", reason }))
)

/** A reason for a signal. @category constructors @since 0.1.0 */
export const signal = (signal: NodeJS.Signals): Reason => ({ _tag: "Signal", signal })
/** A reason that makes the exit code 1. @category constructors @since 0.1.0 */
export const failure = (reason: string, error?: unknown): Reason => ({ _tag: "Failure", reason, error })
/** The reason in words, as logs and the report print it. @category combinators @since 0.1.0 */
export const describe: (reason: Reason) => string = internal.describeReason

// ---- deadlines -------------------------------------------------------------

/**
 * The instants fixed when the quit event fired (`None` before): the end of the
 * drain delay, the drain deadline, the close deadline, the shutdown deadline.
 *
 * @category combinators
 * @since 0.1.0
 */
export const deadlines: Effect.Effect<Option.Option<Deadlines>, never, Quit> = Effect.flatMap(internal.current, (quit) =>
  Effect.sync(() => Option.fromUndefinedOr(quit.deadlines))
)

/**
 * The time left until a deadline (zero once it passed). Before the quit
 * event, the whole span, as if it fired now. Hand it to a client's own close,
 * so that it ends by the shared deadline.
 *
 * @example
 * ```ts
 * import { Duration, Effect, Layer } from "effect"
 * import { Closer, Quit } from "effect-graceful"
 * const broker = { disconnect: async (_timeoutMillis: number) => {} }
 * const Broker = Layer.effectDiscard(Closer.add("broker", Effect.flatMap(Quit.timeLeft("close"), (left) =>
 *   Effect.promise(() => broker.disconnect(Duration.toMillis(left))))))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const timeLeft = (deadline: Deadline): Effect.Effect<Duration.Duration, never, Quit> =>
  Effect.map(internal.current, (quit) => quit.timeLeft(deadline))

/**
 * What a shutdown still waits on: the time since the quit event, every
 * resource not closed yet (a group with its units in flight, a closer), and
 * the next deadline with the time left to it.
 *
 * @category models
 * @since 0.1.0
 */
export type Progress = progress_.Progress

/**
 * The shutdown's progress as data, for a dashboard or a log of your own: from
 * the quit event, at once and then every `every` (default: the
 * `progressInterval` option — `PROGRESS_INTERVAL`, 1 s — or 1 s if that is
 * 0), ending at phase `stopped`. The runner's own progress log line is the
 * same data in words. Fails with `InvalidOption` for an `every` that is not a
 * positive duration.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Quit } from "effect-graceful"
 * const waitingOn = Quit.progress("500 millis").pipe(
 *   Stream.runForEach((p) => Effect.log(p.open.map((resource) => resource.name).join(", ")))
 * )
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const progress = (every?: Options.DurationInput): Stream.Stream<Progress, Options.InvalidOption, Quit> =>
  Stream.unwrap(Effect.gen(function*() {
    const quit = yield* internal.current
    const fallback = quit.options.progressInterval
    const interval = every === undefined
      ? (Duration.isZero(fallback) ? Duration.seconds(1) : fallback)
      : yield* options_.durationOr(every, fallback, "Quit.progress interval")
    if (Duration.isZero(interval)) {
      return yield* new options_.InvalidOption({ variable: "Quit.progress interval", value: String(every), reason: "must be more than 0" })
    }
    return sequence.progressEvery(quit, interval)
  }))

// ---- phases ----------------------------------------------------------------

/** The current phase and when it began. @category combinators @since 0.1.0 */
export const phase: Effect.Effect<PhaseChange, never, Quit> = Effect.map(internal.current, (quit) => {
  // Once the layers are being released, the quit event has fired, whoever reads it first.
  sequence.fireIfReleased(quit)
  return quit.phase
})

/** Every phase reached so far, in order, with the time each began. @category combinators @since 0.1.0 */
export const history: Effect.Effect<ReadonlyArray<PhaseChange>, never, Quit> = Effect.flatMap(internal.current, (quit) =>
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
 * @category combinators
 * @since 0.1.0
 */
export const phases: Stream.Stream<PhaseChange, never, Quit> = Stream.unwrap(Effect.map(internal.current, (quit) => quit.phases.changes))

/**
 * Marks the program as started: `starting → running`. `Main.runMain` does this
 * when the layers are built; call it yourself with `Quit.layer(…, { phase: "starting" })`.
 *
 * @category combinators
 * @since 0.1.0
 */
export const markRunning: Effect.Effect<boolean, never, Quit> = Effect.map(internal.current, (quit) => quit.setPhase("running"))

// ---- in-flight work ----------------------------------------------------------

/**
 * A group of units of work counted under one name: the structural
 * `AddGoroutine`/`DoneGoroutine`. Nobody counts by hand: a unit is counted for
 * exactly as long as it runs.
 *
 * - `inFlight`: units in flight now.
 * - `awaitIdle`: completes the moment no unit is in flight — woken by the
 *   count, never polled.
 * - `closing` / `isClosing`: the group stops taking new work (its `onStop`
 *   runs): when its scope closes, and never before the end of the drain delay
 *   — at it for a group nothing depends on; later for one the layers built on
 *   it still use until they are done. A work loop checks it between units.
 * - `track(unit)`: runs `unit` counted, in a fiber of its own; the cut
 *   interrupts that unit only, and the caller goes on with its exit.
 * - `fork(unit)`: starts `unit` counted in a fiber the group owns: closing the
 *   scope does not interrupt it — the group waits for it, and cuts it only at
 *   the drain deadline.
 * - `enterUnsafe()`: counts one unit from plain JS (a socket, a callback
 *   request); call the returned function when it ends (twice counts once).
 *
 * @category models
 * @since 0.1.0
 */
export type Group = group_.Group

/**
 * Options of a {@link group}: `kind` for the report (default `group`); a
 * `drainTimeout` and `closeTimeout` of its own, which may be shorter than the
 * shared ones, never longer; `onStop` stops new work from arriving (closes a
 * listener); `onCut` cuts what interrupting fibers cannot (destroys sockets).
 *
 * @category models
 * @since 0.1.0
 */
export type GroupOptions = group_.GroupOptions

/**
 * Registers a group for the lifetime of the current scope. When the scope
 * closes, in this order:
 *
 * 1. after the quit event, it waits for the end of the drain delay (a group
 *    whose scope closes later — the layers built on it drained first — does
 *    not wait);
 * 2. `onStop` runs: no new work arrives (a failing one is logged and the
 *    drain goes on; the report says `failed`);
 * 3. it waits until no unit is in flight — done the moment the count is zero;
 * 4. at the drain deadline (or its own shorter drain timeout), units still in
 *    flight are cut: fibers running `track`ed units are interrupted (their
 *    finalizers run) and `onCut` runs;
 * 5. the outcome (`done`, `cut`, `timed out` if even cutting hung past the
 *    close deadline, `failed`) goes to the report.
 *
 * A timeout longer than the shared one fails with `InvalidOption`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const jobs = Effect.gen(function*() {
 *   const group = yield* Quit.group("emails", { kind: "worker" })
 *   yield* group.fork(Effect.log("sending"))
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const group = (name: string, options: GroupOptions = {}): Effect.Effect<Group, Options.InvalidOption, Quit | Scope.Scope> =>
  Effect.flatMap(internal.current, (quit) => Effect.map(group_.make(quit, name, options), (made) => made.group))

/**
 * Runs `unit` counted under `name` for its whole lifetime, in a group made on
 * first use (kind `task`). Unlike a scoped {@link group}, these units are not
 * interrupted by any scope: they are waited for after the program has stopped,
 * and cut at the drain deadline.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit } from "effect-graceful"
 * const sendReceipt = Effect.log("sent").pipe(Quit.track("receipts"))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const track: {
  (name: string): <A, E, R>(unit: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | Quit>
  <A, E, R>(unit: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R | Quit>
} = dual(
  2,
  <A, E, R>(unit: Effect.Effect<A, E, R>, name: string): Effect.Effect<A, E, R | Quit> =>
    Effect.flatMap(internal.current, (quit) =>
      // In a fiber of its own, joined: the cut interrupts the unit, not the caller.
      Effect.flatMap(Effect.forkChild(quit.task(name).track(unit), { startImmediately: true }), Fiber.join))
)

/**
 * Units in flight under `name` (a group, a task, or any counted resource); 0
 * for a name nobody registered.
 *
 * @category combinators
 * @since 0.1.0
 */
export const inFlight = (name: string): Effect.Effect<number, never, Quit> =>
  Effect.map(internal.current, (quit) => counted(quit, name)?.inFlight.count ?? 0)

/**
 * Completes the moment `name` has no unit in flight (at once if it has none).
 * Event-driven: the last unit's end wakes it.
 *
 * @category combinators
 * @since 0.1.0
 */
export const awaitIdle = (name: string): Effect.Effect<void, never, Quit> =>
  Effect.flatMap(internal.current, (quit) => counted(quit, name)?.inFlight.awaitIdle ?? Effect.void)

const counted = (quit: internal.QuitImpl, name: string): Counted | undefined => {
  const entry = quit.registry.find(name)
  return entry instanceof Counted ? entry : undefined
}

// ---- closers -----------------------------------------------------------------

/**
 * Options of closers and stop functions: `kind` for the report (default
 * `closer`); `timeout`, after which it is abandoned (default the close
 * timeout; never later than the close deadline; a longer one is refused).
 *
 * @category models
 * @since 0.1.0
 */
export interface CloseOptions {
  readonly kind?: string | undefined
  readonly timeout?: Options.DurationInput | undefined
}

const registerOutsideScope = (list: "closers" | "stopFuncs") =>
<E>(
  name: string,
  close: CloseFunction<E>,
  options: Omit<CloseOptions, "kind"> = {}
): Effect.Effect<void, Options.InvalidOption, Quit> =>
  Effect.gen(function*() {
    const quit = yield* internal.current
    const timeout = yield* closers.timeout(quit, name, options.timeout)
    quit.registerOutsideScope(list, name, toEffect(close), timeout)
  })

/**
 * Registers a closer outside any scope (Go's `RegisterCloser`), for code not
 * written as a layer. Closers run after the program has stopped and its
 * layers are released, one at a time, last registered first, each under its
 * own timeout and the close deadline.
 *
 * @example
 * ```ts
 * import { Quit } from "effect-graceful"
 * const tracer = { shutdown: async () => {} }
 * const registerTracer = Quit.registerCloser("tracer", () => tracer.shutdown(), { timeout: "2 seconds" })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const registerCloser: <E>(
  name: string,
  close: CloseFunction<E>,
  options?: Omit<CloseOptions, "kind">
) => Effect.Effect<void, Options.InvalidOption, Quit> = registerOutsideScope("closers")

/**
 * Registers a stop function outside any scope (Go's `RegisterStopFunc`): it
 * runs at the end of the drain delay, alongside the program's finalizers,
 * under its own timeout and the close deadline. Use it to tell a non-Effect
 * server to stop accepting (`fastify.close`, `server.close`).
 *
 * @example
 * ```ts
 * import { Quit } from "effect-graceful"
 * const legacy = { stopAccepting: () => {} }
 * const registerLegacy = Quit.registerStopFunc("legacy server", () => legacy.stopAccepting())
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const registerStopFunc: <E>(
  name: string,
  stop: CloseFunction<E>,
  options?: Omit<CloseOptions, "kind">
) => Effect.Effect<void, Options.InvalidOption, Quit> = registerOutsideScope("stopFuncs")
