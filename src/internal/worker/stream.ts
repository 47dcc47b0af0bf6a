/**
 * A `Stream` as a worker source, pulled on demand: a pull starts only when a
 * worker needs an item and none is in hand, one pull at a time, in a fiber of
 * the source's scope (a worker's wait can be cut without cutting the pull).
 * A chunk the stream emits is in hand: its items are handed out one by one
 * and all of them are processed.
 *
 * After the pool halts, `ready` gives what the stream has without waiting —
 * the rest of a chunk in hand, then what a new pull returns at once (items a
 * stream operator holds: `Stream.rechunk`, `Stream.buffer`) — and stops the
 * stream at the first pull that would wait: that pull is interrupted, and no
 * pull starts again.
 *
 * @internal
 */
import { Cause, Deferred, Effect, Exit, Fiber, Option, Scope, Stream } from "effect"
import type { Intake } from "./runner.ts"

/** Where the stream is. @internal */
type State<E> =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "Pulling"; readonly fiber: Fiber.Fiber<void>; readonly settled: Deferred.Deferred<void> }
  | { readonly _tag: "Ended"; readonly cause: Cause.Cause<E | Cause.Done> }

/** Opens `stream` in the current scope as a worker source. @internal */
export const open = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<Intake<A, E>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const pull = yield* Stream.toPull(stream)
    const hand: Array<A> = []
    let state: State<E> = { _tag: "Idle" }
    const end = (cause: Cause.Cause<E | Cause.Done>) => {
      if (state._tag !== "Ended") state = { _tag: "Ended", cause }
    }
    // A closed source gives nothing more, even what is in hand: its pool has drained.
    yield* Scope.addFinalizer(scope, Effect.sync(() => {
      hand.length = 0
      end(Cause.fail(Cause.Done()))
    }))

    // Starts a pull; its chunk goes in hand, its end (or failure) ends the source.
    const startPull: Effect.Effect<Fiber.Fiber<void>> = Effect.suspend(() => {
      const settled = Deferred.makeUnsafe<void>()
      const body = Effect.onExit(pull, (exit) =>
        Effect.sync(() => {
          if (state._tag === "Pulling") state = { _tag: "Idle" }
          if (Exit.isSuccess(exit)) hand.push(...exit.value)
          // An interrupted pull ends the source: the stream is not pulled again.
          else end(Cause.hasInterruptsOnly(exit.cause) ? Cause.fail(Cause.Done()) : exit.cause)
          Deferred.doneUnsafe(settled, Exit.void)
        }))
      return Effect.tap(
        Effect.forkIn(Effect.ignore(body), scope, { startImmediately: true }),
        (fiber) =>
          Effect.sync(() => {
            // It may have settled already, synchronously.
            if (fiber.pollUnsafe() === undefined) state = { _tag: "Pulling", fiber, settled }
          })
      )
    })

    const take: Effect.Effect<A, E | Cause.Done> = Effect.suspend(() => {
      if (hand.length > 0) return Effect.succeed(hand.shift()!)
      switch (state._tag) {
        case "Ended":
          return Effect.failCause(state.cause)
        case "Pulling":
          return Effect.andThen(Deferred.await(state.settled), take)
        case "Idle":
          return Effect.andThen(startPull, take)
      }
    })

    const stop = (fiber: Fiber.Fiber<void>) =>
      Effect.andThen(Fiber.interrupt(fiber), Effect.sync(() => end(Cause.fail(Cause.Done()))))

    const ready: Effect.Effect<Option.Option<A>> = Effect.suspend(() => {
      if (hand.length > 0) return Effect.succeed(Option.some(hand.shift()!))
      switch (state._tag) {
        case "Ended":
          return Effect.succeedNone
        // A pull under way is one that waits.
        case "Pulling":
          return Effect.as(stop(state.fiber), Option.none())
        case "Idle":
          return Effect.flatMap(startPull, (fiber) =>
            fiber.pollUnsafe() !== undefined
              ? ready
              // One turn of the scheduler, for a pull that only yielded; then it waits: stop it.
              : Effect.andThen(
                Effect.yieldNow,
                Effect.suspend(() => fiber.pollUnsafe() !== undefined ? ready : Effect.as(stop(fiber), Option.none()))
              ))
      }
    })

    return { take, ready }
  })
