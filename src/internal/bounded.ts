/**
 * Runs an effect with a hard bound on how long we wait for it.
 *
 * `Effect.timeout` interrupts the effect and waits for the interruption to
 * finish, so a close stuck in an uninterruptible region (a native call, a
 * finalizer that never yields) would hang the timeout too. Here the effect runs
 * in its own fiber and only the *wait* is bounded: at the deadline we stop
 * waiting, ask the fiber to stop, and move on. That is what "abandoned" means.
 *
 * @internal
 */
import { Duration, Effect, Exit, Fiber, Option } from "effect"

/** @internal */
export type Bounded<A, E> =
  | { readonly _tag: "Exited"; readonly exit: Exit.Exit<A, E> }
  | { readonly _tag: "TimedOut" }

/** @internal */
export const bounded = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  timeout: Duration.Duration
): Effect.Effect<Bounded<A, E>, never, R> =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkDetach(effect, { startImmediately: true })
    const exit = yield* Fiber.await(fiber).pipe(
      Effect.timeoutOption(timeout),
      Effect.onInterrupt(() => Effect.sync(() => fiber.interruptUnsafe()))
    )
    if (Option.isSome(exit)) return { _tag: "Exited", exit: exit.value } as const
    fiber.interruptUnsafe()
    return { _tag: "TimedOut" } as const
  })
