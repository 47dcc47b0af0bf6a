/**
 * A Fastify app served gracefully, in one step: its `ready()` awaited before
 * it listens; its `close()` begun at the end of the drain delay, so that its
 * `preClose` hooks run when the listener is about to close and its `onClose`
 * hooks after the drain; one row in the report. Fastify is not imported: an
 * app is anything with its shape.
 *
 * @internal
 */
import { Data, Effect } from "effect"
import type { Connections, NodeServer } from "./connections.ts"
import type { Steps } from "./serve.ts"

/** What the layer needs of a Fastify instance. @internal */
export interface FastifyApp {
  readonly server: NodeServer
  ready(): PromiseLike<unknown>
  close(): PromiseLike<unknown>
}

/**
 * The app's `ready()` failed (a plugin threw while loading): `name` is the
 * server's; nothing was listening yet.
 *
 * @since 0.1.0
 */
export class ReadyError extends Data.TaggedError("ReadyError")<{
  readonly name: string
  readonly cause: unknown
}> {
  override get message(): string {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `${this.name}: the app's ready() failed: ${cause}`
  }
}

/** Awaits the app's `ready()`, which registers its routes and hooks. @internal */
export const ready = (app: FastifyApp, name: string): Effect.Effect<void, ReadyError> =>
  Effect.tryPromise({ try: () => app.ready(), catch: (cause) => new ReadyError({ name, cause }) }).pipe(Effect.asVoid)

/**
 * How a Fastify app stops. Its `close()` sets its closing flag, runs its
 * `preClose` hooks, then calls its server's `close(callback)`: in its place,
 * the listener closes, and the callback runs once every connection is gone —
 * after the drain — when Fastify runs its `onClose` hooks. A `preClose` hook
 * that never ends leaves the listener open until the cut.
 *
 * @internal
 */
export const steps = (app: FastifyApp) => (connections: Connections): Steps => {
  const server: { close(callback?: (error?: Error) => void): unknown } = app.server
  Object.defineProperty(app.server, "close", {
    configurable: true,
    writable: true,
    value: (callback?: (error?: Error) => void) => {
      if (callback !== undefined) {
        if (connections.isClosed) queueMicrotask(() => callback())
        else app.server.once("close", () => callback())
      }
      connections.stop()
      return server
    }
  })
  let closing: Promise<void> | undefined
  const close = () => closing ??= Promise.resolve(app.close()).then(() => undefined)
  return {
    stop: () => void close().catch(() => {}),
    onStop: Effect.andThen(
      Effect.sync(() => void close().catch(() => {})),
      Effect.callback<void>((resume) => {
        if (connections.isClosing) return resume(Effect.void)
        connections.signal.addEventListener("abort", () => resume(Effect.void), { once: true })
      })
    ),
    cut: Effect.sync(() => {
      connections.stop()
      connections.cut()
    }),
    close: Effect.tryPromise({ try: close, catch: (cause) => cause })
  }
}
