/**
 * Turns the ways non-Effect code closes things into one Effect.
 *
 * @internal
 */
import { Effect } from "effect"

/** A close written as an Effect, or as a plain function (sync or returning a Promise). */
export type CloseFunction<E = unknown, R = never> = Effect.Effect<unknown, E, R> | (() => unknown)

/** @internal */
export const toEffect = <E, R>(close: CloseFunction<E, R>): Effect.Effect<void, unknown, R> =>
  Effect.isEffect(close)
    ? Effect.asVoid(close)
    : Effect.tryPromise({ try: async () => void (await close()), catch: (error) => error })
