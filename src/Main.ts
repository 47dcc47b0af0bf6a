/**
 * The process runner: `runMain` turns signals into the quit event, runs the
 * shutdown sequence of `Shutdown.run`, writes the report and exits with a code
 * that says how it went.
 *
 * Exit codes:
 *
 * | code | when |
 * | --- | --- |
 * | 0 | the program completed, or a signal shut it down cleanly |
 * | 1 | the program failed; a resource failed or was abandoned while closing; the shutdown deadline passed; bad configuration; an uncaught exception |
 * | 75 | memory pressure fired the quit event (`Memory`), and the shutdown went well |
 * | 128 + n | a second signal forced the exit (130 for SIGINT, 143 for SIGTERM) |
 *
 * Unlike Effect's `NodeRuntime.runMain` — which exits 130 after SIGTERM,
 * ignores further signals and has no deadline — a clean SIGTERM shutdown exits
 * 0 (what Kubernetes and systemd expect), a second signal forces the exit, and
 * the shutdown deadline bounds the whole.
 *
 * @since 0.1.0
 */
import { Cause, Duration, Effect, Exit, Layer, Option, Runtime, Scope } from "effect"
import { bounded } from "./internal/core/bounded.ts"
import { loggerLayer, make } from "./internal/core/layer.ts"
import * as engines from "./internal/core/engines.ts"
import * as preflight from "./internal/core/preflight.ts"
import { runThen } from "./internal/core/run.ts"
import * as sequence from "./internal/core/sequence.ts"
import * as signals from "./internal/core/signals.ts"
import { Quit as QuitService, type QuitImpl } from "./internal/core/quit.ts"
import * as Memory from "./Memory.ts"
import type * as Options from "./Options.ts"
import * as Platform from "./Platform.ts"
import * as Quit from "./Quit.ts"
import * as Report from "./Report.ts"
import * as Shutdown from "./Shutdown.ts"
import * as Systemd from "./Systemd.ts"

/**
 * A program for {@link runMain}: a layer to launch (the usual case: servers,
 * workers and closers composed with `Layer.mergeAll`/`Layer.provide`) or an
 * effect to run. Its only requirement may be `Quit`.
 *
 * @category models
 * @since 0.1.0
 */
export type Program<E> = Layer.Layer<never, E, Quit.Quit> | Effect.Effect<unknown, E, Quit.Quit>

const isLayer = <E>(program: Program<E>): program is Layer.Layer<never, E, Quit.Quit> => Layer.isLayer(program)

const toEffect = <E>(program: Program<E>): Effect.Effect<unknown, E, Quit.Quit> =>
  isLayer(program) ? Shutdown.launch(program) : Effect.andThen(Quit.markRunning, program)

/**
 * Options of {@link runMain}: the shutdown's options, and what it tells a
 * parent process.
 *
 * @category models
 * @since 0.1.0
 */
export interface RunOptions extends Options.Input {
  /**
   * Send `'ready'` to the parent process once the program runs, when there is
   * one (`process.send`: PM2 — `wait_ready` —, Node's cluster, a parent that
   * forked it). Default `true`. The layers never send anything themselves.
   */
  readonly sendReady?: boolean | undefined
  /**
   * Layers that outlive the program: a tracer (`OtlpTracer.layer`), an OTLP
   * logger or metrics exporter. Built before the program and provided to it;
   * the shutdown's own spans go through them; released after the report —
   * flushing what they buffered — for at most 1 s, on every exit, the forced
   * ones too. Failing to build them is logged, and the process exits 1.
   */
  readonly telemetry?: Layer.Layer<never, unknown> | undefined
  /**
   * Memory pressure (see `Memory`): the quit event fires before the OOM
   * killer. Off unless `highWater` (or `MEMORY_HIGH_WATER`) is set.
   */
  readonly memory?: Memory.Options | undefined
}

/**
 * Runs a program as the process's main, on Effect's `Runtime.makeRunMain`.
 *
 * 1. Resolves the options (environment over `options` over defaults), with
 *    the platform's preset applied (`Platform`: Cloud Run, Fly.io, …, said
 *    in one line). Bad configuration is logged, naming the variable and its
 *    value, and the process exits 1 before the program starts.
 * 2. Builds the layers (phase `starting`), then phase `running`; with a
 *    parent process (PM2, Node's cluster), sends it `'ready'` then; under
 *    systemd (`NOTIFY_SOCKET`), `READY=1` once readiness passes, then
 *    `STOPPING=1`, the progress and the watchdog (`Systemd`). With
 *    `MEMORY_HIGH_WATER` (or `memory`), memory pressure fires the quit event
 *    before the OOM killer (`Memory`).
 * 3. The first of the configured signals — or PM2's `'shutdown'` message
 *    (`shutdown_with_message`, and on Windows) — fires the quit event; the
 *    shutdown sequence of `Shutdown.run` follows. A signal while still
 *    starting releases what was acquired and exits 0. (A signal before
 *    `runMain` is called, while Node still loads the program, gets Node's
 *    default action: nothing has been acquired yet.)
 * 4. A second signal logs what is still open and exits 128 + its number.
 * 5. An uncaught exception or unhandled rejection outside Effect is logged,
 *    fires the quit event so that everything drains, and makes the exit code 1.
 *    A line that stdout or stderr cannot write (nobody reads the pipe: EPIPE)
 *    is dropped, as Node's console drops it: it fails nothing.
 * 6. The shutdown report is written through the `Logger` (`LOG_FORMAT=json` for
 *    JSON lines) and the shutdown's spans go to the `Tracer`; the `telemetry`
 *    layers are released (their exporters flush, for at most 1 s); then the
 *    process exits.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Closer, Main } from "effect-graceful"
 * const Db = Layer.effectDiscard(Closer.add("db", Effect.log("db closed")))
 * Main.runMain(Db, { drainDelay: "5 seconds" })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const runMain = <E>(program: Program<E>, options: RunOptions = {}): void => {
  const { memory, sendReady = true, telemetry, ...input } = options
  // One program per process: a second runner would exit the process under the
  // first one's work. It is refused, and the first one stops (exit 1).
  if (running !== undefined) {
    const first = running
    const reason = "Main.runMain called twice in one process"
    Effect.runFork(
      Effect.logError(`${reason}: compose the programs (Layer.mergeAll) and run them with one Main.runMain`).pipe(
        Effect.provide(loggerLayer(first.options.logFormat))
      )
    )
    sequence.fail(first, Quit.failure(reason))
    return
  }
  // Options.load with the platform's preset (Cloud Run, Fly.io, …) applied; memory pressure's settings.
  const loaded = Effect.runSyncExit(Effect.all([Platform.load(input), Memory.settings(memory)]))
  if (Exit.isFailure(loaded)) {
    const format = process.env["LOG_FORMAT"] === "json" ? "json" : "text"
    const error = Cause.squash(loaded.cause)
    Effect.runSync(
      Effect.logError(`invalid configuration: ${error instanceof Error ? error.message : String(error)}`).pipe(
        Effect.provide(loggerLayer(format))
      )
    )
    return flushThenExit(1)
  }
  const [{ applied, options: resolved }, memorySettings] = loaded.value
  const logger = loggerLayer(resolved.logFormat)
  // Made under the logger: what the quit event logs by itself (a cut at the
  // drain deadline) is written like everything else.
  const quit = Effect.runSync(make(resolved, "starting").pipe(Effect.provide(logger)))
  running = quit
  const old = engines.warnOnce()
  if (old !== undefined) Effect.runSync(Effect.logWarning(old).pipe(Effect.provide(logger)))
  const logSync = (effect: Effect.Effect<void>) => Effect.runFork(Effect.provide(effect, logger))
  logSync(Platform.log(applied))
  const uninstall = install(quit, logSync)
  let exiting = false
  // Once: the main fiber's observer runs as the fiber ends, after the exit
  // it asked for has begun. The listeners stay until the process exits; if
  // the exit waits for output, they go first, and a further signal gets
  // Node's own action (the process ends).
  const exit = (code: number) => {
    if (exiting) return
    exiting = true
    flushThenExit(code, uninstall)
  }
  // The exit follows the report at once: waiting for the main fiber's end
  // would cost a turn of the event loop. Should the fiber end otherwise
  // (a defect in the runner itself), its observer exits 1.
  const ready = sendReady ? Effect.forkDetach(announceReady(quit)) : Effect.void
  // The hosts: systemd's notifications (with NOTIFY_SOCKET), memory pressure (opt-in).
  const hosts = Effect.andThen(
    Effect.forkDetach(Systemd.run),
    Option.match(memorySettings, { onNone: () => Effect.void, onSome: (settings) => Effect.forkDetach(Memory.run(settings)) })
  )
  // The configuration the layers declared is checked before any is built.
  const checked = Effect.andThen(preflight.check, toEffect(program))
  // The report is written, then — with no telemetry to release — the process
  // exits in that same step, before the quit event's own fibers are ended:
  // nothing else follows the last unit (they are ended only if the exit
  // waits for the output).
  const run = Effect.andThen(
    Effect.andThen(ready, hosts),
    runThen(checked, (report) =>
      Effect.andThen(
        Report.log(report, resolved.logFormat),
        Effect.sync(() => {
          if (telemetry === undefined) exit(report.exitCode)
          return report.exitCode
        })
      ))
  )
  const main = (telemetry === undefined ? run : withTelemetry(telemetry, run)).pipe(
    Effect.flatMap((code) => Effect.sync(() => exit(code))),
    Effect.provideService(QuitService, quit),
    Effect.provide(logger)
  )
  Runtime.makeRunMain(({ fiber }) => {
    fiber.addObserver(() => exit(1))
  })(main, { disableErrorReporting: true })
}

/** The quit event of the program this process runs, once `runMain` is called. */
let running: QuitImpl | undefined

const FLUSH = Duration.seconds(1)

/**
 * Whether what was written to `stream` has gone out: Node's own stream (a
 * pipe, a terminal, a file) with nothing left in its buffer. A `write` put in
 * its place, as PM2's cluster mode does, may buffer elsewhere: not known.
 */
const isOut = (stream: NodeJS.WriteStream): boolean => stream.writableLength === 0 && !Object.hasOwn(stream, "write")

/**
 * Exits once what was written to stdout and stderr has gone out, waiting at
 * most {@link FLUSH}: at once if it already has (on Linux, Node writes pipes
 * and terminals before `write` returns); else when both have called back — a
 * stream a process manager puts in their place (PM2's cluster mode writes to
 * its log files through `fs.WriteStream`s) may still hold the report, and
 * exiting at once cut it short after its first line. `beforeWaiting` runs
 * only then.
 */
const flushThenExit = (code: number, beforeWaiting: () => void = () => {}): void => {
  if (isOut(process.stdout) && isOut(process.stderr)) return process.exit(code)
  beforeWaiting()
  let exited = false
  const exit = () => {
    if (exited) return
    exited = true
    process.exit(code)
  }
  setTimeout(exit, Duration.toMillis(FLUSH))
  process.stdout.write("", () => process.stderr.write("", exit))
}

/**
 * Runs `run` with the telemetry layers built around it, then releases them
 * (their exporters flush) for at most {@link FLUSH}; its exit code. A build
 * failure is exit code 1, its cause logged, before the program starts.
 */
const withTelemetry = <R>(
  telemetry: Layer.Layer<never, unknown>,
  run: Effect.Effect<number, never, R>
): Effect.Effect<number, never, R> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const built = yield* Effect.exit(Layer.buildWithScope(telemetry, scope))
    if (Exit.isFailure(built)) {
      yield* Effect.logError("the telemetry layers failed to build", built.cause)
      return 1
    }
    const code = yield* Effect.provide(run, built.value)
    yield* bounded(Scope.close(scope, Exit.void), Effect.sleep(FLUSH))
    return code
  })

/**
 * Sends `'ready'` to the parent process once the phase is `running` (never if
 * the program stops before it runs, or if there is no parent).
 */
const announceReady = (quit: QuitImpl): Effect.Effect<void> =>
  Effect.andThen(
    quit.reached("running"),
    Effect.sync(() => {
      if (quit.phase.phase === "running" && process.send !== undefined && process.connected) process.send("ready")
    })
  )

// Output nobody reads any more (its pipe closed: EPIPE) is no failure of the
// program's: Node's console drops a line it cannot write, and so do we. Else
// the stream's 'error' event for the next line is an uncaught exception —
// which fires the quit event, and whose own log line is another one. Left in
// place to the end: the report may be the line that fails.
const ignore = () => {}
const dropUnwritable = (stream: NodeJS.WriteStream) => {
  if (!stream.listeners("error").includes(ignore)) stream.on("error", ignore)
}

/**
 * Installs the process listeners; returns the function that removes them.
 */
const install = (quit: QuitImpl, log: (effect: Effect.Effect<void>) => void): () => void => {
  let signalled = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return quit.force(signal)
    signalled = true
    sequence.fire(quit, Quit.signal(signal))
  }
  const onFailure = (kind: string) => (error: unknown) => {
    log(Effect.logError(`${kind} outside Effect; shutting down`, Cause.die(error)))
    sequence.fail(quit, Quit.failure(kind, error))
  }
  // PM2's message in place of a signal (`shutdown_with_message`, Windows).
  const onMessage = (message: unknown) => {
    if (message === "shutdown" && !signalled) {
      signalled = true
      sequence.fire(quit, { _tag: "Requested", reason: "shutdown message" })
    }
  }
  const onException = onFailure("uncaught exception")
  const onRejection = onFailure("unhandled rejection")
  dropUnwritable(process.stdout)
  dropUnwritable(process.stderr)
  const unlisten = signals.listen(quit.options.signals, { hear: onSignal, raiseAlone: false })
  process.on("uncaughtException", onException)
  process.on("unhandledRejection", onRejection)
  if (process.send !== undefined) process.on("message", onMessage)
  return () => {
    process.removeListener("message", onMessage)
    unlisten()
    process.removeListener("uncaughtException", onException)
    process.removeListener("unhandledRejection", onRejection)
  }
}
