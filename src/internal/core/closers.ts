/**
 * Closers: a close registered with the quit event, run when its scope closes
 * under its own timeout and the close deadline.
 *
 * @internal
 */
import type { Duration, Scope } from "effect"
import { Effect } from "effect"
import { componentTimeout, type DurationInput, type InvalidOption } from "./options.ts"
import type { QuitImpl } from "./quit.ts"
import * as sequence from "./sequence.ts"

/** A closer's own timeout: the close timeout when not given; a longer one is refused. @internal */
export const timeout = (quit: QuitImpl, name: string, input: DurationInput | undefined): Effect.Effect<Duration.Duration, InvalidOption> =>
  Effect.fromResult(componentTimeout(quit.options, "closeTimeout", input, `${name}: timeout`))

/** Registers `close` to run when the current scope closes. @internal */
export const add = (
  quit: QuitImpl,
  name: string,
  kind: string,
  close: Effect.Effect<void, unknown>,
  limit: Duration.Duration
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.suspend(() => {
    const entry = quit.registerPlain(name, kind)
    return Effect.addFinalizer(() => sequence.close(quit, entry, Effect.as(close, { outcome: "done" } as const), limit))
  })
