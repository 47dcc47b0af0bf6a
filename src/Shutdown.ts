/**
 * The shutdown sequence, as an Effect: what happens between the quit event and
 * the exit code. `Main.runMain` wraps it with signals and `process.exit`; it
 * lives apart from them so that every step and deadline runs on Effect's
 * `Clock` and can be tested with `TestClock`.
 *
 * @since 0.1.0
 */
import type { Layer } from "effect"
import { Effect, Layer as L } from "effect"
import { current, type Quit } from "./internal/core/quit.ts"
import { runThen } from "./internal/core/run.ts"
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
  runThen(program, Effect.succeed)
