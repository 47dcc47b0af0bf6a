/**
 * Runs an effect with a hard bound on how long we wait for it.
 *
 * `Effect.timeout` interrupts the effect and waits for the interruption to
 * finish, so a close stuck in an uninterruptible region (a native call, a
 * finalizer that never yields) would hang the timeout too. Here the effect runs
 * in its own fiber and only the *wait* is bounded: when `until` completes we
 * stop waiting, ask the fiber to stop, and move on. That is what "abandoned"
 * means.
 *
 * @internal
 */
import { Effect, Exit } from "effect"
import { first } from "./first.ts"

/** @internal */
export type Bounded<A, E> =
  | { readonly _tag: "Exited"; readonly exit: Exit.Exit<A, E> }
  | { readonly _tag: "TimedOut" }

/** @internal */
export const bounded = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  until: Effect.Effect<void>
): Effect.Effect<Bounded<A, E>, never, R> =>
  Effect.flatMap(Effect.context<R>(), (context) =>
    first<Bounded<A, E>, never>(
      Effect.map(Effect.exit(Effect.provideContext(effect, context)), (exit) => ({ _tag: "Exited", exit }) as const),
      Effect.as(until, { _tag: "TimedOut" } as const)
    ))
