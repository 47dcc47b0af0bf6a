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
import { describeConfigError } from "./internal/core/configError.ts"
import { first as firstOf } from "./internal/core/first.ts"
import { finish } from "./internal/core/layer.ts"
import { InvalidOption } from "./internal/core/options.ts"
import { current, describeReason, type Quit, type QuitImpl } from "./internal/core/quit.ts"
import * as sequence from "./internal/core/sequence.ts"
import { traceShutdown } from "./internal/core/trace.ts"
import type * as Report from "./Report.ts"

/**
 * A layer as a program: builds it (phase `starting`), marks the quit event
 * `running`, and holds it open until interrupted. `Layer.launch`, plus the
 * moment the service is ready.
 *
 * @category combinators
 * @since 0.1.0
 */
export const launch = <ROut, E, RIn>(layer: Layer.Layer<ROut, E, RIn>): Effect.Effect<never, E, RIn | Quit> =>
  L.build(layer).pipe(
    Effect.andThen(Effect.flatMap(current, (quit) => Effect.sync(() => quit.setPhase("running")))),
    Effect.andThen(Effect.never),
    Effect.scoped
  )

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
 * Runs `program` until it ends or the quit event fires, then shuts down
 * against the deadlines fixed at the quit event, in this order:
 *
 * 1. `draining` — the quit event fired; readiness already says not-ready.
 *    The drain delay passes (skipped if the program was still `starting`:
 *    nothing routes to a service that never became ready).
 * 2. `stopping` — registered stop functions run, and at the same time the
 *    program is interrupted, so its finalizers run in Effect's order: reverse
 *    acquisition, merged layers in parallel. Every group is cut at the drain
 *    deadline, every closer abandoned by the close deadline.
 * 3. Units counted with `Quit.track` outside any scope are waited for, and
 *    cut at the drain deadline.
 * 4. Closers registered with `Quit.registerCloser` run, last registered first.
 * 5. `stopped` — the report is written.
 *
 * At the shutdown deadline whatever is still open is logged and the result
 * says exit code 1. A second signal (`Quit` forced) ends it at once with
 * 128 + the signal number.
 *
 * The program's own failure, a failing or timed-out resource, or a quit event
 * fired by a failure make the exit code 1; otherwise it is 0.
 *
 * @category combinators
 * @since 0.1.0
 */
export const run = <A, E, R>(program: Effect.Effect<A, E, R>): Effect.Effect<Report.Report, never, R | Quit> =>
  Effect.gen(function*() {
    const quit = yield* current
    // Detached, so that returning the report never waits on a program or a
    // stop sequence that the deadline or a second signal has abandoned.
    const fiber = yield* Effect.forkDetach(program, { startImmediately: true })
    const first = yield* Effect.raceFirst(
      Effect.map(Fiber.await(fiber), (exit) => ({ _tag: "exited", exit }) as const),
      Effect.map(quit.fired, (reason) => ({ _tag: "fired", reason }) as const)
    ).pipe(Effect.onInterrupt(() => Fiber.interrupt(fiber)))
    if (first._tag === "exited") {
      if (Exit.isSuccess(first.exit)) sequence.fire(quit, { _tag: "Completed" }, { immediate: true })
      else failed(quit, first.exit.cause)
    }
    const { deadlines, reason } = yield* quit.whenFired
    const stop = yield* Effect.forkDetach(stopAll(quit, fiber), { startImmediately: true })
    // `first`: the report must not wait for the losers' interruption.
    const ending = yield* firstOf(
      Effect.as(Fiber.await(stop), { _tag: "graceful" } as Ending),
      firstOf(
        Effect.as(quit.sleepUntil(deadlines.shutdown), { _tag: "deadline" } as Ending),
        Effect.map(quit.forced, (signal): Ending => ({ _tag: "forced", signal }))
      )
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
    sequence.stopped(quit)
    const rows = quit.rows()
    const report: Report.Report = {
      reason: describeReason(reason),
      ending: ending._tag !== "graceful"
        ? ending._tag
        : first._tag === "fired"
        ? "graceful"
        : Exit.isSuccess(first.exit)
        ? "completed"
        : "failed",
      exitCode: exitCode(quit, ending, programExit, rows),
      totalMillis: quit.now() - deadlines.fired,
      rows,
      ...(quit.routing.ended === undefined ? {} : { drainDelay: quit.routing.ended })
    }
    traceShutdown(yield* Effect.tracer, quit, report)
    return report
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
    yield* Effect.all([sequence.runStopFuncs(quit), Fiber.interrupt(program)], { concurrency: "unbounded", discard: true })
    yield* finish(quit)
  })
