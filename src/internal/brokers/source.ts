/**
 * The wiring every broker module shares: the connection as a closer (its own
 * row of the report, closed after the pool because it is registered before
 * it), the source a `Worker` pool takes from, and the handler forms.
 *
 * @internal
 */
import type { Scope } from "effect"
import type { Duration } from "effect"
import { Effect } from "effect"
import * as closers from "../core/closers.ts"
import * as groups from "../core/group.ts"
import type { DurationInput, InvalidOption } from "../core/options.ts"
import { current, type Quit, type QuitImpl } from "../core/quit.ts"
import { BrokerError, HandlerError } from "./errors.ts"
import type { Intake } from "./intake.ts"

/** The timeouts a pool named `name` will have (its own, checked against the shared ones). @internal */
export const timeouts = (
  name: string,
  options: { readonly drainTimeout?: DurationInput | undefined; readonly closeTimeout?: DurationInput | undefined }
): Effect.Effect<groups.Timeouts & { readonly quit: QuitImpl }, InvalidOption, Quit> =>
  Effect.flatMap(current, (quit) => Effect.map(groups.timeouts(quit, name, options), (own) => ({ ...own, quit })))

/**
 * Registers the connection's close, under `name connection`, to run when the
 * current scope closes — after the pool registered later in that scope has
 * drained and its source has handed back what was left.
 *
 * @internal
 */
export const connectionCloser = (
  quit: QuitImpl,
  name: string,
  broker: string,
  close: () => Promise<void>
): Effect.Effect<void, never, Scope.Scope> =>
  closers.add(
    quit,
    `${name} connection`,
    "closer",
    Effect.tryPromise({ try: close, catch: (cause) => new BrokerError({ broker, operation: "closing the connection", cause }) }),
    quit.options.closeTimeout
  )

/**
 * What a pool takes from: the intake, opened in the pool's source scope, whose
 * close (after the drain) hands back what is left and waits for every
 * settlement, bounded by `limit`. `start` begins the broker's deliveries.
 *
 * @internal
 */
export const source = <M>(intake: Intake<M>, start: () => void, limit: Duration.Duration) => ({
  open: Effect.gen(function*() {
    yield* Effect.addFinalizer(() => intake.close(limit))
    start()
    return { take: intake.take, halt: intake.halt }
  })
})

/**
 * A handler written with Promises, for plain code: it gets an `AbortSignal`
 * aborted when its unit is cut; a rejection fails the unit with a
 * {@link HandlerError}.
 *
 * @internal
 */
export const promise = <M>(handler: (message: M, signal: AbortSignal) => PromiseLike<unknown>) => (message: M) =>
  Effect.tryPromise({ try: (signal) => handler(message, signal), catch: (cause) => new HandlerError({ cause }) })
