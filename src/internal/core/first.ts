/**
 * The first of a few effects to end, without waiting for the others: they are
 * interrupted and left to end on their own. `Effect.raceFirst` waits for the
 * loser's interruption to finish — a turn of the event loop at least, and for
 * ever if the loser is uninterruptible — which a shutdown's last steps cannot
 * afford.
 *
 * @internal
 */
import { Effect, type Exit, type Fiber } from "effect"

/**
 * Each effect starts in a fiber of its own, in order, at once; one that ends
 * while starting wins, and the later ones never start. All of them are waited
 * for in one place (no fiber per pair), and the losers are interrupted the
 * moment the winner ends.
 *
 * @internal
 */
export const first = <A, E>(...effects: readonly [Effect.Effect<A, E>, ...Array<Effect.Effect<A, E>>]): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    const fibers: Array<Fiber.Fiber<A, E>> = []
    for (const effect of effects) {
      const fiber = yield* Effect.forkDetach(effect, { startImmediately: true })
      const ended = fiber.pollUnsafe()
      if (ended !== undefined) {
        for (const loser of fibers) loser.interruptUnsafe()
        return yield* ended
      }
      fibers.push(fiber)
    }
    return yield* Effect.callback<A, E>((resume) => {
      let settled = false
      const settle = (exit: Exit.Exit<A, E>) => {
        if (settled) return
        settled = true
        for (const fiber of fibers) fiber.interruptUnsafe()
        resume(exit)
      }
      const offs = fibers.map((fiber) => fiber.addObserver(settle))
      return Effect.sync(() => {
        settled = true
        for (const off of offs) off()
        for (const fiber of fibers) fiber.interruptUnsafe()
      })
    })
  })
