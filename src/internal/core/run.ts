/**
 * The shutdown sequence as one Effect, for every runner: the program runs
 * until it ends or the quit event fires; the stop sequence (`sequence.ts`)
 * follows, bounded by the shutdown deadline and a second signal; the report
 * is made, handed to the runner, and only then do the quit event's own fibers
 * end — under `Main.runMain` the process has exited by then, so that nothing
 * but the report and the exit follows the last unit.
 *
 * @internal
 */
import { Cause, Config, Duration, Effect, Exit, Fiber } from "effect"
import { constants } from "node:os"
import type * as Report from "./report.ts"
import { describeConfigError } from "./configError.ts"
import { first } from "./first.ts"
import { finish } from "./layer.ts"
import { InvalidOption } from "./options.ts"
import { current, describeReason, type Quit, type QuitImpl } from "./quit.ts"
import * as sequence from "./sequence.ts"
import { traceShutdown } from "./trace.ts"

/** Fires the quit event for a program that failed, saying whether it was its configuration. */
const failed = (quit: QuitImpl, cause: Cause.Cause<unknown>): void => {
  if (Cause.hasInterruptsOnly(cause)) return
  const error = Cause.squash(cause)
  const reason = badConfiguration(error) === undefined ? "the program failed" : "invalid configuration"
  sequence.fail(quit, { _tag: "Failure", reason, error }, { immediate: true })
}

type Ending = { readonly _tag: "graceful" } | { readonly _tag: "deadline" } | {
  readonly _tag: "forced"
  readonly signal: NodeJS.Signals
}

/**
 * `Shutdown.run`, with `then` given the report before the quit event's own
 * fibers end (they end whatever `then` does): `Main.runMain` writes the
 * report and exits in there, so that ending them costs the exit nothing.
 *
 * @internal
 */
export const runThen = <A, E, R, B, R2>(
  program: Effect.Effect<A, E, R>,
  then: (report: Report.Report) => Effect.Effect<B, never, R2>
): Effect.Effect<B, never, R | R2 | Quit> =>
  Effect.gen(function*() {
    const quit = yield* current
    // Detached, so that returning the report never waits on a program or a
    // stop sequence that the deadline or a second signal has abandoned.
    const fiber = yield* Effect.forkDetach(program, { startImmediately: true })
    const trigger = yield* Effect.raceFirst(
      Effect.map(Fiber.await(fiber), (exit) => ({ _tag: "exited", exit }) as const),
      Effect.map(quit.fired, (reason) => ({ _tag: "fired", reason }) as const)
    ).pipe(Effect.onInterrupt(() => Fiber.interrupt(fiber)))
    if (trigger._tag === "exited") {
      if (Exit.isSuccess(trigger.exit)) sequence.fire(quit, { _tag: "Completed" }, { immediate: true })
      else failed(quit, trigger.exit.cause)
    }
    const { deadlines, reason } = yield* quit.whenFired
    const stop = yield* Effect.forkDetach(stopAll(quit, fiber), { startImmediately: true })
    // `first`: the report must not wait for the losers' interruption.
    const ending = yield* first(
      Effect.as(Fiber.await(stop), { _tag: "graceful" } as Ending),
      Effect.as(quit.sleepUntil(deadlines.shutdown), { _tag: "deadline" } as Ending),
      Effect.map(quit.forced, (signal): Ending => ({ _tag: "forced", signal }))
    )
    if (ending._tag !== "graceful") {
      const open = quit.stillOpen()
      const why = ending._tag === "deadline"
        ? `shutdown timeout of ${Duration.format(quit.options.shutdownTimeout)} passed`
        : `${ending.signal} received again during shutdown`
      yield* Effect.logError(`${why}; exiting now; still open: ${open.length === 0 ? "nothing" : open.join("; ")}`)
    }
    const programExit = fiber.pollUnsafe()
    if (programExit !== undefined && Exit.isFailure(programExit) && !Cause.hasInterruptsOnly(programExit.cause)) {
      const bad = badConfiguration(Cause.squash(programExit.cause))
      yield* bad === undefined
        ? Effect.logError("the program failed", programExit.cause)
        : Effect.logError(`invalid configuration: ${bad}`)
    }
    quit.setPhase("stopped")
    const rows = quit.rows()
    const report: Report.Report = {
      reason: describeReason(reason),
      ending: ending._tag !== "graceful"
        ? ending._tag
        : trigger._tag === "fired"
        ? "graceful"
        : Exit.isSuccess(trigger.exit)
        ? "completed"
        : "failed",
      exitCode: exitCode(quit, ending, programExit, rows),
      totalMillis: quit.now() - deadlines.fired,
      rows,
      ...(quit.routing.ended === undefined ? {} : { drainDelay: quit.routing.ended })
    }
    traceShutdown(yield* Effect.tracer, quit, report)
    return yield* Effect.ensuring(then(report), Effect.sync(() => sequence.stopped(quit)))
  })

/** A failure that is bad configuration, in words; `undefined` for any other. */
const badConfiguration = (error: unknown): string | undefined =>
  error instanceof Config.ConfigError
    ? describeConfigError(error)
    : error instanceof InvalidOption
    ? error.message
    : undefined

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
  if (rows.some((row) => row.outcome === "failed" || row.outcome === "timed out")) return 1
  // A host that asked for the shutdown (memory pressure) may ask for a code of its own.
  const reason = quit.reason
  return reason?._tag === "Host" ? reason.exitCode : 0
}

// The drain delay ends early if the program has already ended by itself.
const stopAll = (quit: QuitImpl, program: Fiber.Fiber<unknown, unknown>): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* Effect.raceFirst(quit.awaitStopping, Fiber.await(program))
    sequence.beginStopping(quit)
    const interrupt = Fiber.interrupt(program)
    // With no stop function, nothing to run beside it: no fibers to join after the program's end.
    yield* quit.stopFuncs.length === 0
      ? interrupt
      : Effect.all([sequence.runStopFuncs(quit), interrupt], { concurrency: "unbounded", discard: true })
    yield* finish(quit)
  })
