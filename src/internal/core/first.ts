/**
 * The first of two effects to end, without waiting for the other: it is
 * interrupted and left to end on its own. `Effect.raceFirst` waits for the
 * loser's interruption to finish — a turn of the event loop at least, and for
 * ever if the loser is uninterruptible — which a shutdown's last steps cannot
 * afford.
 *
 * @internal
 */
import { Effect, type Exit, type Fiber } from "effect"

/** @internal */
export const first = <A, E>(left: Effect.Effect<A, E>, right: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    const l = yield* Effect.forkDetach(left, { startImmediately: true })
    const ended = l.pollUnsafe()
    if (ended !== undefined) return yield* ended
    const r = yield* Effect.forkDetach(right, { startImmediately: true })
    return yield* Effect.callback<A, E>((resume) => {
      let settled = false
      const settle = (loser: Fiber.Fiber<A, E>) => (exit: Exit.Exit<A, E>) => {
        if (settled) return
        settled = true
        loser.interruptUnsafe()
        resume(exit)
      }
      const offLeft = l.addObserver(settle(r))
      const offRight = r.addObserver(settle(l))
      return Effect.sync(() => {
        settled = true
        offLeft()
        offRight()
        l.interruptUnsafe()
        r.interruptUnsafe()
      })
    })
  })
