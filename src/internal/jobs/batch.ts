/**
 * Group commit of completions: the done marks (each with its `commit`) that
 * arrive while one transaction commits are written together in the next, one
 * savepoint each — so a failing `commit` rolls back only its own job — and
 * one `COMMIT` (one fsync on SQLite, one WAL flush on PostgreSQL) serves them
 * all; the done marks of completions with no `commit` are one statement.
 * A completion alone is written as before: one statement, or one
 * transaction with its `commit`.
 *
 * The writer is one fiber at a time, forked when the first completion arrives
 * and gone when none is left; `idle` completes once it is gone.
 *
 * @internal
 */
import { Deferred, Effect, Exit, Latch } from "effect"
import type { Fiber } from "effect"

/** One completion: how to write it (a savepoint of its own in a batch), and who waits for the answer. @internal */
export interface Completion {
  readonly write: Write
  readonly answer: Deferred.Deferred<boolean, unknown>
}

/**
 * A completion: its statements, with the user's `commit` (a transaction even
 * alone, a savepoint in a batch), or a plain done mark of `claim` — several
 * of which are one statement in a batch.
 *
 * @internal
 */
export type Write =
  | { readonly _tag: "Commit"; readonly effect: Effect.Effect<boolean, unknown> }
  | { readonly _tag: "Plain"; readonly effect: Effect.Effect<boolean, unknown>; readonly claim: readonly [number, string] }

/** @internal */
export interface Batcher {
  readonly submit: (write: Write) => Effect.Effect<boolean, unknown>
  /** Completes when no write is under way or waiting. */
  readonly idle: Effect.Effect<void>
}

/**
 * `single` writes one completion as it is; `batch` writes several in one
 * transaction and answers each (its own exit); `fork` runs the writer fiber.
 *
 * @internal
 */
export const make = (options: {
  readonly single: (write: Write) => Effect.Effect<boolean, unknown>
  readonly batch: (writes: ReadonlyArray<Write>) => Effect.Effect<ReadonlyArray<Exit.Exit<boolean, unknown>>, unknown>
  readonly fork: (effect: Effect.Effect<void>) => Fiber.Fiber<void>
  readonly max: number
}): Batcher => {
  const waiting: Array<Completion> = []
  let writing = false
  const idle = Latch.makeUnsafe(true)

  const writeOne = (completion: Completion) =>
    Effect.flatMap(Effect.exit(options.single(completion.write)), (exit) => Deferred.done(completion.answer, exit))

  const writeMany = (completions: ReadonlyArray<Completion>) =>
    Effect.flatMap(Effect.exit(options.batch(completions.map((c) => c.write))), (exit) =>
      Effect.sync(() => {
        completions.forEach((completion, i) =>
          Deferred.doneUnsafe(completion.answer, Exit.isSuccess(exit) ? exit.value[i]! : exit as Exit.Exit<never, unknown>)
        )
      }))

  const writer: Effect.Effect<void> = Effect.suspend(() => {
    const next = waiting.splice(0, options.max)
    if (next.length === 0) {
      writing = false
      idle.openUnsafe()
      return Effect.void
    }
    return Effect.andThen(next.length === 1 ? writeOne(next[0]!) : writeMany(next), writer)
  })

  return {
    submit: (write) =>
      Effect.suspend(() => {
        const answer = Deferred.makeUnsafe<boolean, unknown>()
        waiting.push({ write, answer })
        if (!writing) {
          writing = true
          idle.closeUnsafe()
          // One turn first: completions of this turn join the first transaction.
          options.fork(Effect.andThen(Effect.yieldNow, writer))
        }
        return Deferred.await(answer)
      }),
    idle: idle.await
  }
}
