/**
 * Turns the ways non-Effect code closes things into one Effect.
 *
 * @internal
 */
import { Effect } from "effect"

/** A close written as an Effect, or as a plain function (sync, returning a Promise, or returning an Effect). */
export type CloseFunction<E = unknown, R = never> = Effect.Effect<unknown, E, R> | (() => unknown)

/**
 * One Effect for every form: a function is called when the close runs; what
 * it returns is awaited when it is a Promise and run when it is an Effect
 * (`() => Effect.sync(…)` is a close, not a value to drop); what it throws
 * fails the close.
 *
 * @internal
 */
export const toEffect = <E, R>(close: CloseFunction<E, R>): Effect.Effect<void, unknown, R> =>
  Effect.isEffect(close)
    ? Effect.asVoid(close)
    : Effect.suspend(() => {
      let result: unknown
      try {
        result = close()
      } catch (error) {
        return Effect.fail(error)
      }
      if (Effect.isEffect(result)) return Effect.asVoid(result as Effect.Effect<unknown, unknown, R>)
      return Effect.tryPromise({ try: async () => void (await result), catch: (error) => error })
    })
