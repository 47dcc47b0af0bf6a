/**
 * Configuration checked before anything is acquired. A layer that reads the
 * environment (`Http.layerConfig`'s PORT, `JobQueue.layerConfig`'s JOBS_DB,
 * `Grpc.layer`'s GRPC_PORT) declares what it reads when it is made — when the
 * program composes its layers — and `Main.runMain` checks every declaration
 * before it builds any layer: a bad PORT is refused before the database the
 * server depends on is opened, not after it was opened and closed again. The
 * layer reads the same value again when it is built.
 *
 * @internal
 */
import { Effect } from "effect"
import type { InvalidOption } from "./options.ts"

const declared = new Set<Effect.Effect<unknown, InvalidOption>>()

/** Declares a read of the configuration, to be checked before any layer is built. @internal */
export const declare = <A>(read: Effect.Effect<A, InvalidOption>): Effect.Effect<A, InvalidOption> => {
  declared.add(read)
  return read
}

/** Every read declared so far: the first bad value fails. @internal */
export const check: Effect.Effect<void, InvalidOption> = Effect.suspend(() =>
  Effect.forEach(declared, (read) => read, { discard: true })
)
