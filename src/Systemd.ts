/**
 * systemd: a `Type=notify` service that tells systemd where it stands, pings
 * its watchdog from the event loop, and serves on the sockets systemd holds
 * for it.
 *
 * When `NOTIFY_SOCKET` is set (systemd sets it for `Type=notify` services),
 * `Main.runMain` runs {@link run}, which sends:
 *
 * | when | message |
 * | --- | --- |
 * | the program runs: every server listens, readiness passes (when PM2 gets `ready`) | `READY=1`, `STATUS=running`, `MAINPID=` |
 * | the quit event | `STOPPING=1`, `STATUS=` the reason and the deadlines, `EXTEND_TIMEOUT_USEC=` the time to the shutdown deadline plus {@link MARGIN} |
 * | while draining, every progress interval | `STATUS=` the progress line (what is still open, the next deadline) |
 * | every half `WATCHDOG_USEC` (`WatchdogSec=`), from the event loop | `WATCHDOG=1` |
 *
 * `EXTEND_TIMEOUT_USEC` makes systemd wait for the shutdown deadline whatever
 * `TimeoutStopSec` says (systemd ≥ 236). A blocked event loop sends no
 * `WATCHDOG=1`, and systemd restarts the service `WatchdogSec` later.
 *
 * Node cannot send a Unix datagram: see the transports in `docs/hosts.md`
 * (`node-unix-socket` if installed, else a `python3` helper, else
 * `systemd-notify`; the last two need `NotifyAccess=all`).
 *
 * Socket activation needs nothing here: the `Http`, `Grpc` and `Health`
 * layers listen on the sockets passed with `LISTEN_FDS` (matched by
 * `LISTEN_FDNAMES` to the server's name, else in order) instead of binding.
 *
 * @since 0.1.0
 */
import { Config, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { read } from "./internal/core/configError.ts"
import { describe as describeProgress } from "./internal/core/progress.ts"
import * as activation from "./internal/hosts/activation.ts"
import * as transports from "./internal/hosts/notify.ts"
import * as Health from "./Health.ts"
import type { InvalidOption } from "./Options.ts"
import * as Quit from "./Quit.ts"

/**
 * What systemd waits beyond the shutdown deadline (`EXTEND_TIMEOUT_USEC`,
 * and the `TimeoutStopSec` of the example unit): the report, the flush of
 * the output (≤ 1 s) and of the telemetry (≤ 1 s), and the exit.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { Systemd } from "effect-graceful"
 * const timeoutStopSec = (shutdownTimeout: Duration.Duration) => Duration.toSeconds(Duration.sum(shutdownTimeout, Systemd.MARGIN))
 * ```
 * @category constants
 * @since 0.1.0
 */
export const MARGIN: Duration.Duration = Duration.seconds(5)

/**
 * The settings systemd gives a service: where to notify, and its watchdog.
 *
 * @category models
 * @since 0.1.0
 */
export interface Settings {
  /** `NOTIFY_SOCKET`: a path, or `@name` in the abstract namespace. */
  readonly socket: string
  /** `WATCHDOG_USEC`, when the watchdog is on and meant for this process (`WATCHDOG_PID`). */
  readonly watchdog: Option.Option<Duration.Duration>
  /** `SYSTEMD_NOTIFY_TRANSPORT`: the transport to use rather than the first this host has. */
  readonly transport: Option.Option<transports.Kind>
}

/**
 * The settings from the environment, through `Config`; `None` without
 * `NOTIFY_SOCKET`. A value that cannot be used fails with `InvalidOption`.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Systemd } from "effect-graceful"
 * const underSystemd = Effect.map(Systemd.settings, Option.isSome)
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const settings: Effect.Effect<Option.Option<Settings>, InvalidOption> = read(Config.all({
  socket: Config.option(Config.String("NOTIFY_SOCKET")),
  usec: Config.option(Config.schema(Schema.Int, "WATCHDOG_USEC")),
  pid: Config.option(Config.schema(Schema.Int, "WATCHDOG_PID")),
  transport: Config.option(Config.schema(Schema.Literals(transports.KINDS), "SYSTEMD_NOTIFY_TRANSPORT"))
})).pipe(Effect.map(({ pid, socket, transport, usec }) =>
  Option.map(Option.filter(socket, (path) => path !== ""), (path): Settings => ({
    socket: path,
    watchdog: Option.filter(usec, (n) => n > 0 && Option.getOrElse(pid, () => process.pid) === process.pid).pipe(
      Option.map((n) => Duration.micros(BigInt(n)))
    ),
    transport
  }))
))

let opened: transports.Transport | undefined

/**
 * Sends one message to systemd (`KEY=value` lines) when `NOTIFY_SOCKET` is
 * set; does nothing otherwise. The transport is opened on first use and kept
 * for the life of the process. A failure to send is logged, never raised.
 *
 * @example
 * ```ts
 * import { Systemd } from "effect-graceful"
 * const warming = Systemd.notify("STATUS=warming the cache")
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const notify = (message: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const transport = yield* open
    if (transport !== undefined) transport.send(message)
  })

const open: Effect.Effect<transports.Transport | undefined> = Effect.suspend(() => {
  if (opened !== undefined) return Effect.succeed(opened)
  return Effect.gen(function*() {
    const found = yield* Effect.catch(settings, (error) => Effect.as(Effect.logWarning(`systemd: ${error.message}; not notifying`), Option.none()))
    if (Option.isNone(found)) return undefined
    const context = yield* Effect.context<never>()
    const onError = (error: unknown) =>
      Effect.runForkWith(context)(Effect.logWarning(`systemd: a notification failed: ${error instanceof Error ? error.message : String(error)}`))
    if (opened !== undefined) return opened
    opened = transports.open(found.value.socket, Option.getOrUndefined(found.value.transport), onError)
    if (opened === undefined) {
      yield* Effect.logWarning(
        `systemd: NOTIFY_SOCKET is set but no transport is available (install node-unix-socket, or python3, or systemd-notify); not notifying`
      )
    } else yield* Effect.logDebug(`systemd: notifying ${found.value.socket} through ${opened.kind}`)
    return opened
  })
})

/** A status line as systemd shows it: one line. */
const status = (text: string) => `STATUS=${text.replace(/\s*\n\s*/g, "; ")}`

const seconds = (millis: number) => `${(millis / 1000).toFixed(1)} s`

const READY_RETRY = Duration.seconds(1)

const untilReady: Effect.Effect<void, never, Quit.Quit> = Effect.flatMap(
  Health.isReady,
  (ok) => ok ? Effect.void : Effect.andThen(Effect.sleep(READY_RETRY), Effect.suspend(() => untilReady))
)

/**
 * `READY=1` once the phase is `running` and readiness passes (retried every
 * second while a check fails); never if the quit event comes first.
 */
const ready: Effect.Effect<void, never, Quit.Quit> = Effect.gen(function*() {
  yield* Quit.phases.pipe(Stream.filter((change) => change.phase !== "starting"), Stream.take(1), Stream.runDrain)
  const passed = yield* Effect.raceFirst(
    Effect.as(untilReady, true),
    Effect.as(Quit.fired, false)
  )
  if (passed && !(yield* Quit.hasFired)) yield* notify(`READY=1\n${status("running")}\nMAINPID=${process.pid}`)
})

/** At the quit event: `STOPPING=1`, the extension to the shutdown deadline, then the progress. */
const stopping: Effect.Effect<void, never, Quit.Quit> = Effect.gen(function*() {
  const reason = yield* Quit.fired
  const deadlines = yield* Quit.deadlines
  const left = yield* Quit.timeLeft("shutdown")
  const extend = Duration.sum(left, MARGIN)
  const at = Option.match(deadlines, {
    onNone: () => "",
    onSome: (d) => `; listeners close in ${seconds(d.stopping - d.fired)}, shutdown deadline in ${seconds(d.shutdown - d.fired)}`
  })
  yield* notify(
    `STOPPING=1\n${status(`stopping (${Quit.describe(reason)})${at}`)}\nEXTEND_TIMEOUT_USEC=${Duration.toMillis(extend) * 1000}`
  )
  yield* Quit.progress().pipe(
    Stream.drop(1),
    Stream.runForEach((progress) => notify(status(describeProgress(progress)))),
    Effect.ignore
  )
  yield* notify(status("stopped"))
})

/** `WATCHDOG=1` every half `every`, from the event loop: a blocked loop sends none. */
const watchdog = (every: Duration.Duration): Effect.Effect<never> =>
  Effect.forever(Effect.andThen(notify("WATCHDOG=1"), Effect.sleep(Duration.divideUnsafe(every, 2))))

/**
 * Tells systemd where the program stands (see the table above) for as long
 * as the process lives; does nothing without `NOTIFY_SOCKET`. `Main.runMain`
 * runs it; under another runner, use {@link layer}. Logs a warning for a
 * setting it cannot use, or socket-activated sockets that no server took.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quit, Systemd } from "effect-graceful"
 * const program = Effect.forkDetach(Systemd.run).pipe(Effect.provide(Quit.layer()))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const run: Effect.Effect<void, never, Quit.Quit> = Effect.gen(function*() {
  yield* warnUntaken
  const found = yield* Effect.catch(settings, () => Effect.succeed(Option.none<Settings>()))
  if (Option.isNone(found)) return
  const transport = yield* open
  if (transport === undefined) return
  const pings = Option.match(found.value.watchdog, { onNone: () => Effect.void, onSome: watchdog })
  yield* Effect.all([pings, ready, stopping], { concurrency: "unbounded", discard: true })
})

// Once the program runs, every server has listened: a passed socket none took is a unit file's mistake.
const warnUntaken: Effect.Effect<void, never, Quit.Quit> = Effect.forkDetach(
  Effect.gen(function*() {
    yield* Quit.phases.pipe(Stream.filter((change) => change.phase !== "starting"), Stream.take(1), Stream.runDrain)
    const untaken = activation.current().untaken
    if ((yield* Quit.phase).phase === "running" && untaken.length > 0) {
      yield* Effect.logWarning(
        `systemd: sockets passed but not listened on: ${untaken.map((s) => `fd ${s.fd} (${s.name})`).join(", ")}; ` +
          `name them (FileDescriptorName=) after the servers: http, grpc, health, or the name option`
      )
    }
  })
).pipe(Effect.asVoid)

/**
 * {@link run} as a layer, for runners other than `Main.runMain` (its fiber
 * outlives the layer's scope, to send the progress while the program drains,
 * and ends with the process). Build it with `Quit.layer(…, { phase:
 * "starting" })` and mark the program running (`Quit.markRunning`) when it
 * is: `READY=1` waits for that.
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 * import { Quit, Shutdown, Systemd } from "effect-graceful"
 * const App = Layer.empty
 * NodeRuntime.runMain(Shutdown.launch(Layer.merge(App, Systemd.layer)).pipe(
 *   Effect.provide(Quit.layer({}, { phase: "starting" }))))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<never, never, Quit.Quit> = Layer.effectDiscard(Effect.asVoid(Effect.forkDetach(run)))
