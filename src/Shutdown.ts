/**
 * The shutdown sequence, as an Effect: what happens between the quit event and
 * the exit code. `Main.runMain` wraps it with signals and `process.exit`; it
 * lives apart from them so that every step and deadline runs on Effect's
 * `Clock` and can be tested with `TestClock`.
 *
 * @since 0.1.0
 */
import type { Layer } from "effect"
import { Cause, Config, Duration, Effect, Exit, Fiber, Layer as L } from "effect"
import { constants } from "node:os"
import { drain, type QuitImpl } from "./internal/quit.ts"
import { Quit } from "./Quit.ts"
import * as Quit_ from "./Quit.ts"
import type * as Report from "./Report.ts"

/**
 * A layer as a program: builds it (phase `starting`), marks the quit event
 * `running`, and holds it open until interrupted. `Layer.launch`, plus the
 * moment the service is ready.
 *
 * @since 0.1.0
 */
export const launch = <ROut, E, RIn>(layer: Layer.Layer<ROut, E, RIn>): Effect.Effect<never, E, RIn | Quit> =>
  L.build(layer).pipe(Effect.andThen(Quit_.markRunning), Effect.andThen(Effect.never), Effect.scoped)

type Ending = { readonly _tag: "graceful" } | { readonly _tag: "deadline" } | {
  readonly _tag: "forced"
  readonly signal: NodeJS.Signals
}

/**
 * Runs `program` until it ends or the quit event fires, then shuts down, in
 * this order:
 *
 * 1. `draining` — the quit event fired; readiness already says not-ready.
 *    The drain delay passes (skipped if the program was still `starting`:
 *    nothing routes to a service that never became ready).
 * 2. `stopping` — registered stop functions run, and at the same time the
 *    program is interrupted, so its finalizers run in Effect's order: reverse
 *    acquisition, merged layers in parallel. Each group and closer registered
 *    through `Quit` is bounded by its own timeout.
 * 3. Units counted with `Quit.track` outside any scope get the drain timeout,
 *    then are cut.
 * 4. Closers registered with `Quit.registerCloser` run, last registered first.
 * 5. `stopped` — the report is written.
 *
 * The shutdown timeout runs from the quit event; when it passes, whatever is
 * still open is logged and the result says exit code 1. A second signal
 * (`Quit` forced) ends it at once with 128 + the signal number.
 *
 * The program's own failure, a failing or timed-out resource, or a quit event
 * fired by a failure make the exit code 1; otherwise it is 0.
 *
 * @since 0.1.0
 */
export const run = <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<Report.Report, never, R | Quit> =>
  Effect.gen(function*() {
    const quit = yield* Quit
    // Detached, so that returning the report never waits on a program or a
    // stop sequence that the deadline or a second signal has abandoned.
    const fiber = yield* Effect.forkDetach(program, { startImmediately: true })
    const first = yield* Effect.raceFirst(
      Effect.map(Fiber.await(fiber), (exit) => ({ _tag: "exited", exit }) as const),
      Effect.map(quit.fired, (reason) => ({ _tag: "fired", reason }) as const)
    ).pipe(Effect.onInterrupt(() => Fiber.interrupt(fiber)))
    if (first._tag === "exited") {
      if (Exit.isSuccess(first.exit)) quit.fire({ _tag: "Completed" })
      else quit.fail(Quit_.failure("the program failed", Cause.squash(first.exit.cause)))
    } else {
      yield* Effect.logInfo(
        `quit event (${Quit_.describe(first.reason)}): draining; drain delay ${
          Duration.format(quit.options.drainDelay)
        }, shutdown timeout ${Duration.format(quit.options.shutdownTimeout)}`
      )
    }
    const firedAt = quit.firedAt!
    const wasRunning = quit.history.some((change) => change.phase === "running")
    const stop = yield* Effect.forkDetach(stopAll(quit, fiber, first._tag === "fired" && wasRunning), {
      startImmediately: true
    })
    const remaining = Duration.millis(
      Math.max(0, Duration.toMillis(quit.options.shutdownTimeout) - (quit.now() - firedAt))
    )
    const ending = yield* Effect.raceAllFirst([
      Effect.as(Fiber.await(stop), { _tag: "graceful" } as Ending),
      Effect.as(Effect.sleep(remaining), { _tag: "deadline" } as Ending),
      Effect.map(quit.forced, (signal): Ending => ({ _tag: "forced", signal }))
    ])
    if (ending._tag !== "graceful") {
      const open = quit.stillOpen()
      const why = ending._tag === "deadline"
        ? `shutdown timeout of ${Duration.format(quit.options.shutdownTimeout)} passed`
        : `${ending.signal} received again during shutdown`
      yield* Effect.logError(`${why}; exiting now; still open: ${open.length === 0 ? "nothing" : open.join("; ")}`)
    }
    const programExit = fiber.pollUnsafe()
    if (programExit !== undefined && Exit.isFailure(programExit) && !Cause.hasInterruptsOnly(programExit.cause)) {
      const error = Cause.squash(programExit.cause)
      yield* error instanceof Config.ConfigError
        ? Effect.logError(`invalid configuration: ${error.message}`)
        : Effect.logError("the program failed", programExit.cause)
    }
    quit.setPhase("stopped")
    const rows = quit.rows()
    const report: Report.Report = {
      reason: Quit_.describe(quit.reason!),
      ending: ending._tag === "graceful" ? (first._tag === "exited" ? "completed" : "graceful") : ending._tag,
      exitCode: exitCode(quit, ending, programExit, rows),
      totalMillis: quit.now() - firedAt,
      rows
    }
    return report
  })

const exitCode = (
  quit: QuitImpl,
  ending: Ending,
  programExit: Exit.Exit<unknown, unknown> | undefined,
  rows: ReadonlyArray<Report.Row>
): number => {
  if (ending._tag === "forced") return 128 + (constants.signals[ending.signal] ?? 0)
  if (ending._tag === "deadline") return 1
  if (programExit !== undefined && Exit.isFailure(programExit) && !Cause.hasInterruptsOnly(programExit.cause)) return 1
  if (quit.failed) return 1
  return rows.some((row) => row.outcome === "failed" || row.outcome === "timed out") ? 1 : 0
}

const stopAll = (
  quit: QuitImpl,
  program: Fiber.Fiber<unknown, unknown>,
  drainDelay: boolean
): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (drainDelay && Duration.isGreaterThan(quit.options.drainDelay, Duration.zero)) {
      yield* Effect.raceFirst(Effect.sleep(quit.options.drainDelay), Fiber.await(program))
    }
    quit.setPhase("stopping")
    yield* Effect.all([
      Effect.forEach(quit.stopFuncs, (stop) => quit.close(stop.entry, done(stop.run), stop.timeout), {
        concurrency: "unbounded",
        discard: true
      }),
      Fiber.interrupt(program)
    ], { concurrency: "unbounded", discard: true })
    const { closeTimeout, drainTimeout } = quit.options
    yield* Effect.forEach(quit.tasks.values(), (entry) => drain(quit, entry, { drainTimeout, closeTimeout }), {
      concurrency: "unbounded",
      discard: true
    })
    for (const closer of [...quit.closers].reverse()) {
      yield* quit.close(closer.entry, done(closer.run), closer.timeout)
    }
  })

const done = (run: Effect.Effect<void, unknown>) => Effect.as(run, { outcome: "done" } as const)

