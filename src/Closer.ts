/**
 * Closers as layers: any resource that closes with `close`, `end` or
 * `destroy` — in Promise, callback or sync style — becomes a named, scoped
 * resource with its own close timeout. A DB pool, a Redis client, a file
 * handle, a child process, a non-Effect server (`fastify.close()`).
 *
 * Order follows the layer graph: a layer's close runs after the close of every
 * layer that depends on it, so a database closes after the workers and servers
 * that use it. Each close is bounded: a hung one is abandoned at its timeout
 * and named in the log and the report; a failing one is logged with its cause;
 * neither stops the others.
 *
 * @since 0.1.0
 */
import type { Context, Scope } from "effect"
import { Data, Effect, Layer } from "effect"
import type { ChildProcess } from "node:child_process"
import { type CloseFunction, toEffect } from "./internal/core/close.ts"
import * as closers from "./internal/core/closers.ts"
import type { InvalidOption } from "./internal/core/options.ts"
import { current } from "./internal/core/quit.ts"
import type * as Quit from "./Quit.ts"

/**
 * A close: an Effect, or a plain function — sync, or returning a Promise. For
 * the callback style, wrap it with {@link callback}.
 *
 * @category models
 * @since 0.1.0
 */
export type Close<E = unknown, R = never> = CloseFunction<E, R>

/**
 * A callback-style close reported an error.
 *
 * @category errors
 * @since 0.1.0
 */
export class CloseError extends Data.TaggedError("CloseError")<{ readonly cause: unknown }> {
  override get message(): string {
    return this.cause instanceof Error ? this.cause.message : String(this.cause)
  }
}

/**
 * A Node-style callback close as an Effect: `done()` succeeds, `done(error)`
 * fails with a {@link CloseError}.
 *
 * @example
 * ```ts
 * import { createServer } from "node:net"
 * import { Closer } from "effect-graceful"
 * const server = createServer()
 * const close = Closer.callback((done) => server.close(done))
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const callback = (register: (done: (error?: unknown) => void) => void): Effect.Effect<void, CloseError> =>
  Effect.callback<void, CloseError>((resume) => {
    register((error) => resume(error === undefined || error === null ? Effect.void : Effect.fail(new CloseError({ cause: error }))))
  })

/**
 * Ends a child process: sends `signal` (default `SIGTERM`) and completes when
 * it exits — at once if it already has. If the close timeout abandons it, or
 * the process exits while it waits (a second signal, the shutdown deadline),
 * the child is killed with `SIGKILL`: it never outlives its service.
 *
 * @example
 * ```ts
 * import { spawn } from "node:child_process"
 * import { Effect } from "effect"
 * import { Closer } from "effect-graceful"
 * const Sidecar = Closer.layerDiscard("sidecar", Effect.suspend(() => Closer.childProcess(spawn("sidecar"))))
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const childProcess = (
  child: ChildProcess,
  options: { readonly signal?: NodeJS.Signals | undefined } = {}
): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    // Whatever ends this process while the child is still closing — a second
    // signal, the shutdown deadline — the child does not outlive it.
    const kill = () => void child.kill("SIGKILL")
    process.once("exit", kill)
    child.once("exit", () => {
      process.removeListener("exit", kill)
      resume(Effect.void)
    })
    child.kill(options.signal ?? "SIGTERM")
    return Effect.sync(() => {
      process.removeListener("exit", kill)
      kill()
    })
  })

// Checks the timeout first — a bad one fails before anything is acquired —
// then registers closes under it, with the caller's context.
const registrar = <R>(name: string, options: Quit.CloseOptions) =>
  Effect.gen(function*() {
    const quit = yield* current
    const timeout = yield* closers.timeout(quit, name, options.timeout)
    const context = yield* Effect.context<R>()
    return (close: Close<unknown, R>): Effect.Effect<void, never, Scope.Scope> =>
      closers.add(quit, name, options.kind ?? "closer", Effect.provideContext(toEffect(close), context), timeout)
  })

/**
 * Runs `close` when the current scope closes, under its own timeout and the
 * close deadline: a hung close is abandoned and logged by name, a failing one
 * is logged with its cause, and neither stops the other finalizers. Use it
 * inside `Layer.effect` so that the close follows the layer graph; for a
 * resource you acquire here too, {@link make}. A timeout longer than the
 * close timeout fails with `InvalidOption`, before anything is registered.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Closer } from "effect-graceful"
 * const pool = { end: async () => {} }
 * const DbLive = Layer.effectDiscard(Closer.add("db", () => pool.end(), { timeout: "2 seconds" }))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const add = <E = never, R = never>(
  name: string,
  close: Close<E, R>,
  options: Quit.CloseOptions = {}
): Effect.Effect<void, InvalidOption, Quit.Quit | Scope.Scope | R> =>
  Effect.flatMap(registrar<R>(name, options), (register) => register(close))

/**
 * Acquires a resource and closes it when the current scope closes, under the
 * name `name` and its own timeout (`options.timeout`, default the close
 * timeout, never later than the close deadline). The timeout is checked
 * before anything is acquired (a longer one than the close timeout fails with
 * `InvalidOption`); acquiring and registering the close cannot be separated by
 * an interruption.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { open } from "node:fs/promises"
 * import { Closer } from "effect-graceful"
 * const log = Closer.make("audit log", Effect.promise(() => open("audit.log", "a")), (file) => () => file.close())
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const make = <A, E, R, E2 = never, R2 = never>(
  name: string,
  acquire: Effect.Effect<A, E, R>,
  close: (resource: A) => Close<E2, R2>,
  options: Quit.CloseOptions = {}
): Effect.Effect<A, E | InvalidOption, R | R2 | Quit.Quit | Scope.Scope> =>
  Effect.flatMap(registrar<R2>(name, options), (register) =>
    Effect.uninterruptibleMask((restore) => Effect.tap(restore(acquire), (resource) => register(close(resource)))))

/**
 * {@link make} as a layer that provides the resource as a service. Layers
 * that use it close first.
 *
 * @example
 * ```ts
 * import { Context, Effect } from "effect"
 * import { DatabaseSync } from "node:sqlite"
 * import { Closer } from "effect-graceful"
 * class Db extends Context.Service<Db, DatabaseSync>()("Db") {}
 * const DbLive = Closer.layer(Db, "db", Effect.sync(() => new DatabaseSync("app.db")), (db) => () => db.close())
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = <I, S, E, R, E2 = never, R2 = never>(
  service: Context.Key<I, S>,
  name: string,
  acquire: Effect.Effect<S, E, R>,
  close: (resource: S) => Close<E2, R2>,
  options: Quit.CloseOptions = {}
): Layer.Layer<I, E | InvalidOption, Exclude<R | R2, Scope.Scope> | Quit.Quit> =>
  Layer.effect(service, make(name, acquire, close, options))

/**
 * A close on its own as a layer: for a thing made outside Effect — a
 * framework's server, a broker client — whose close must run in order with the
 * rest.
 *
 * @example
 * ```ts
 * import Fastify from "fastify"
 * import { Closer } from "effect-graceful"
 * const app = Fastify()
 * const FastifyLive = Closer.layerDiscard("fastify", () => app.close(), { timeout: "10 seconds" })
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerDiscard = <E = never, R = never>(
  name: string,
  close: Close<E, R>,
  options: Quit.CloseOptions = {}
): Layer.Layer<never, InvalidOption, Exclude<R, Scope.Scope> | Quit.Quit> => Layer.effectDiscard(add(name, close, options))
