/**
 * Graceful HTTP servers: on shutdown the listener closes, the requests in
 * flight finish, idle keep-alive connections close at once, and the server is
 * closed the moment its last request ends — not Node's keep-alive timeout
 * later.
 *
 * Two kinds of app, the same drain:
 *
 * - **Effect apps** (`HttpRouter`, `HttpServer.serve`): {@link layer} is a
 *   drop-in for `NodeHttpServer.layer`, which it reuses for serving.
 * - **Plain Node handlers** (Express, Fastify, Koa, `node:http`): {@link layerNode}
 *   takes the server your framework gives you.
 *
 * Both take `node:http`, `node:https` and `node:http2` servers (h2c and TLS).
 * Each server is a group of the quit event (kind `http`): its requests in
 * flight are in the shutdown report and in the `effect_graceful_in_flight`
 * gauge. Readiness and liveness (see `Health`) can be answered on the same
 * server with the `health` option.
 *
 * @since 0.1.0
 */
import type * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as NodeServices from "@effect/platform-node/NodeServices"
import { Config, Context, Effect, Exit, Layer, Option, Schema, Scope, Stream } from "effect"
import type { Etag, HttpPlatform, HttpServer } from "effect/http"
import type * as Net from "node:net"
import { read } from "./internal/core/configError.ts"
import * as groups from "./internal/core/group.ts"
import * as preflight from "./internal/core/preflight.ts"
import type { InvalidOption } from "./internal/core/options.ts"
import { current } from "./internal/core/quit.ts"
import type { Connections, NodeServer } from "./internal/http/connections.ts"
import * as fastify from "./internal/http/fastify.ts"
import type { ReadyError } from "./internal/http/fastify.ts"
import { type BindError, bindError, where } from "./internal/http/listen.ts"
import * as serve from "./internal/http/serve.ts"
import type * as Quit from "./Quit.ts"

export {
  /**
   * The server could not listen (port in use, no permission, foreign host);
   * `address` names what was asked for. The layer fails with it, and whatever
   * else was acquired is released.
   *
   * @category errors
   * @since 0.1.0
   */
  BindError
} from "./internal/http/listen.ts"

/**
 * How a server drains, shared by every layer:
 *
 * - `name`: its name in the report, logs and metrics (default `http`);
 * - `drainTimeout`: a drain timeout of its own, shorter than the shared one,
 *   never longer;
 * - `closeTimeout`: bounds cutting and the final close, after the cut;
 *   shorter than the shared close timeout, never longer (the grace for a
 *   request on the wire is at most this);
 * - `health`: answer readiness and liveness on this server (`true`: `/readyz`
 *   and `/livez`) — until its listener closes: point a liveness probe at
 *   `Health.layer`'s port instead, which stays open until the exit.
 *
 * @category models
 * @since 0.1.0
 */
export type Options = serve.Options

/**
 * Options of {@link layerNode}: drain options and where to listen. For 1,000s
 * of connections arriving at once, raise `backlog`.
 *
 * @category models
 * @since 0.1.0
 */
export interface NodeOptions extends Options, Net.ListenOptions {}

/**
 * Options of {@link layer}: drain options, where to listen, and the options of
 * `NodeHttpServer` that still apply (`websocket`).
 *
 * @category models
 * @since 0.1.0
 */
export interface EffectOptions
  extends Options, Omit<NodeHttpServer.Options, "disablePreemptiveShutdown" | "gracefulShutdownTimeout">
{}

/**
 * A WebSocket server that keeps its clients: the `ws` package's
 * `WebSocketServer` (with its default `clientTracking`), or any other with the
 * same shape.
 *
 * @category models
 * @since 0.1.0
 */
export type WebSocketServer = serve.WebSocketServer

/**
 * What the server's factory receives:
 *
 * - `closing`: an `AbortSignal` aborted when the server begins to close (its
 *   listener closes), for long-lived responses written as plain Node code;
 * - `webSockets(wss)`: registers a WebSocket server (`new WebSocketServer({
 *   server })` of the `ws` package) and returns it. When the server begins to
 *   close, each of its open sockets gets the close frame 1001 "going away"
 *   (RFC 6455 §7.4.1); the drain waits for them to close, up to the drain
 *   deadline, when what is left is destroyed.
 *
 * @category models
 * @since 0.1.0
 */
export type Setup = serve.Setup

/**
 * Makes the server, given its {@link Setup}:
 *
 * ```ts
 * Http.layerNode(({ closing, webSockets }) => {
 *   const server = createServer((req, res) => {
 *     const timer = setInterval(() => res.write("data: tick\n\n"), 1000)
 *     closing.addEventListener("abort", () => res.end("event: bye\ndata: closing\n\n"))
 *     res.on("close", () => clearInterval(timer))
 *   })
 *   webSockets(new WebSocketServer({ server })).on("connection", (ws) => ws.send("hello"))
 *   return server
 * }, { port: 8080 })
 * ```
 *
 * @category models
 * @since 0.1.0
 */
export type Evaluate<S extends NodeServer> = (setup: Setup) => S

/**
 * The closing of the server that serves the current Effect app: long-lived
 * responses (server-sent events, streams, WebSockets) watch it to end
 * themselves cleanly — with a last event — before the drain deadline cuts
 * them. It comes at the end of the drain delay, when the listener closes (the
 * quit event, `Quit.fired`, comes earlier: at its start). Provided by
 * {@link layer}; use {@link closing} and {@link endOnClose} rather than its
 * members.
 *
 * @category services
 * @since 0.1.0
 */
export class Closing extends Context.Service<Closing, {
  /** Completes when the server begins to close. */
  readonly await: Effect.Effect<void>
  readonly isClosing: () => boolean
  /** Aborted when the server begins to close. */
  readonly signal: AbortSignal
}>()("effect-graceful/Http/Closing") {}

const makeClosing = (connections: Connections): Closing["Service"] => ({
  signal: connections.signal,
  isClosing: () => connections.isClosing,
  await: Effect.callback<void>((resume) => {
    const signal = connections.signal
    if (signal.aborted) return resume(Effect.void)
    const onAbort = () => resume(Effect.void)
    signal.addEventListener("abort", onAbort, { once: true })
    return Effect.sync(() => signal.removeEventListener("abort", onAbort))
  })
})

/**
 * Completes when the server serving this request begins to close. Race a
 * long wait against it to answer before the drain deadline cuts the request.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { HttpServerResponse } from "effect/http"
 * import { Http } from "effect-graceful"
 * const longPoll = Effect.raceFirst(
 *   Effect.sleep("25 seconds").pipe(Effect.as(HttpServerResponse.text("no news"))),
 *   Http.closing.pipe(Effect.as(HttpServerResponse.text("retry elsewhere", { status: 503 })))
 * )
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const closing: Effect.Effect<void, never, Closing> = Closing.use((closing) => closing.await)

/**
 * Ends `stream` when the server begins to close — at once, not after the next
 * element — and then emits `last` (a goodbye event), so that a long-lived
 * response finishes before the drain deadline instead of being cut.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { HttpServerResponse } from "effect/http"
 * import { Http } from "effect-graceful"
 * const events = Effect.gen(function*() {
 *   const ticks = Stream.tick("1 second").pipe(Stream.map(() => "data: tick\n\n"))
 *   const body = yield* Http.endOnClose(ticks, "event: bye\ndata: closing\n\n")
 *   return HttpServerResponse.stream(Stream.encodeText(body), { contentType: "text/event-stream" })
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const endOnClose = <A, E, R>(stream: Stream.Stream<A, E, R>, last?: A): Effect.Effect<Stream.Stream<A, E, R>, never, Closing> =>
  Closing.use((closing) =>
    Effect.succeed(stream.pipe(
      Stream.interruptWhen(closing.await),
      Stream.concat(Stream.suspend(() => last !== undefined && closing.isClosing() ? Stream.make(last) : Stream.empty))
    ))
  )

/**
 * Serves a plain Node server gracefully: the server your framework made, with
 * its request listeners on (Express, Koa: `createServer(app)`; Fastify:
 * `fastify.server` after `ready()`; `node:http2` with a compatibility handler).
 * It listens when the layer is built and drains when its scope closes; at the
 * drain deadline the sockets still in flight are destroyed.
 *
 * Requests are counted as they arrive and until their response closes;
 * upgraded connections (WebSockets) until their socket closes — also through
 * listeners the app adds after the layer is built; health probes are answered
 * before any listener of the app's sees them, and the app's listeners stay
 * its own. Every connection is tracked from TCP accept, so none — not a TLS
 * handshake that never finishes — can hold the shutdown.
 *
 * @example
 * ```ts
 * import express from "express"
 * import { createServer } from "node:http"
 * import { Http, Main } from "effect-graceful"
 * const app = express().get("/", (_req, res) => res.send("hello"))
 * Main.runMain(Http.layerNode(() => createServer(app), { port: 8080, health: true }))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerNode = <S extends NodeServer>(
  evaluate: Evaluate<S>,
  options: NodeOptions = {}
): Layer.Layer<never, BindError | InvalidOption, Quit.Quit> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const quit = yield* current
    // Checked before anything is acquired.
    const own = yield* groups.timeouts(quit, options.name ?? "http", options)
    const controller = new AbortController()
    yield* serve.serveNode(quit, evaluate(serve.setupFor(controller)), controller, own, options)
  }))

/**
 * What {@link layerFastify} needs of a Fastify instance (it does not import
 * Fastify): its `server`, `ready()` and `close()`.
 *
 * @category models
 * @since 0.1.0
 */
export type FastifyApp = fastify.FastifyApp

export {
  /**
   * The app's `ready()` failed (a plugin threw while loading); nothing was
   * listening yet.
   *
   * @category errors
   * @since 0.1.0
   */
  ReadyError
} from "./internal/http/fastify.ts"

/**
 * Serves a Fastify app, in one step: do not call `listen()` or `ready()`,
 * and register no closer for it.
 *
 * - Its `ready()` is awaited before the server listens (its routes and hooks
 *   are registered then); a failure is a {@link ReadyError}.
 * - At the end of the drain delay its `close()` begins: Fastify marks itself
 *   closing and runs its `preClose` hooks, then the listener closes — a
 *   `preClose` hook keeps it open, until the drain deadline at most.
 * - The drain is `layerNode`'s; requests that arrive on a connection after
 *   Fastify began closing get its 503 unless the app was made with
 *   `return503OnClosing: false`.
 * - Its `onClose` hooks (where plugins close their databases) run once the
 *   drain is over and every connection is gone, within the close deadline.
 * - One row in the report, `name` (default `http`): its time includes the
 *   `onClose` hooks, and a hook that fails makes it `failed`.
 *
 * @example
 * ```ts
 * import Fastify from "fastify"
 * import { Http, Main } from "effect-graceful"
 * const app = Fastify()
 * app.get("/", async () => "hello")
 * app.addHook("onClose", async () => console.log("the database closes here"))
 * Main.runMain(Http.layerFastify(() => app, { port: 8080 }))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerFastify = (
  evaluate: (setup: Setup) => FastifyApp,
  options: NodeOptions = {}
): Layer.Layer<never, BindError | InvalidOption | ReadyError, Quit.Quit> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const quit = yield* current
    const name = options.name ?? "http"
    // Checked before anything is acquired.
    const own = yield* groups.timeouts(quit, name, options)
    const controller = new AbortController()
    const app = evaluate(serve.setupFor(controller))
    yield* fastify.ready(app, name)
    yield* serve.serveNode(quit, app.server, controller, own, options, fastify.steps(app))
  }))

/**
 * Serves Effect apps gracefully: a drop-in for `NodeHttpServer.layer` that
 * provides the same services plus {@link Closing}. Serving (requests,
 * responses, upgrades) is `NodeHttpServer`'s; the shutdown is ours. At the
 * drain deadline, handlers still running are interrupted: their finalizers run
 * and the client gets 503 if no headers were sent. Route handlers of
 * `HttpRouter` are interruptible; a bare `HttpServer.serve` app runs
 * uninterruptibly (Effect's choice) and is waited for up to the close timeout.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { createServer } from "node:http"
 * import { Http, Main } from "effect-graceful"
 * const Routes = HttpRouter.add("GET", "/", HttpServerResponse.text("hello"))
 * const App = HttpRouter.serve(Routes).pipe(Layer.provide(Http.layer(() => createServer(), { port: 8080 })))
 * Main.runMain(App)
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = <S extends NodeServer>(
  evaluate: Evaluate<S>,
  options: EffectOptions = {}
): Layer.Layer<
  HttpServer.HttpServer | Closing | NodeServices.NodeServices | HttpPlatform.HttpPlatform | Etag.Generator,
  BindError | InvalidOption,
  Quit.Quit
> => Layer.mergeAll(layerServer(evaluate, options), Layer.unwrap(Effect.map(effectHttp, ({ node }) => node.layerHttpServices)))

// Effect's HTTP server and the Node platform's, loaded when a layer of
// `layer` is built rather than with this module: a program that serves plain
// Node servers (`layerNode`) starts without them, ~0.5 s less on a loaded
// machine. The module, not the platform's index: the index loads every Node
// service (undici among them), ~30 MB and ~150 ms that a server never uses.
const effectHttp = Effect.promise(async () => {
  const [node, http] = await Promise.all([import("@effect/platform-node/NodeHttpServer"), import("effect/http")])
  return { node, http }
})

const layerServer = <S extends NodeServer>(evaluate: Evaluate<S>, options: EffectOptions) =>
  Layer.effectContext(Effect.gen(function*() {
    const quit = yield* current
    // Checked before anything is acquired.
    const own = yield* groups.timeouts(quit, options.name ?? "http", options)
    const { http: { HttpServer }, node: NodeHttpServer } = yield* effectHttp
    const probes = yield* serve.intercept(quit, options.health)
    const controller = new AbortController()
    const server = evaluate(serve.setupFor(controller))
    const connections = serve.connectionsOf(quit, server, controller, own)
    const nodeOptions = where(options.name ?? "http", serve.listenOptions(options))
    // Its own close before the requests' scope (`disablePreemptiveShutdown`)
    // would race a timer against a listener our drain has already closed.
    const inner = yield* NodeHttpServer.make(() => server, { ...nodeOptions, disablePreemptiveShutdown: true }).pipe(
      Effect.mapError((error) => bindError(nodeOptions, error.cause))
    )
    const served = HttpServer.make({
      address: inner.address,
      serve: (app, middleware) =>
        Effect.gen(function*() {
          // NodeHttpServer runs each request's fiber in a scope under the one
          // it serves in; serving in a scope of our own lets the cut close it
          // early, which interrupts every handler still running, and waits.
          const serving = yield* Scope.fork(yield* Effect.scope, "sequential")
          // Each request's context is the one served in plus a few services,
          // added as overlays that every lookup walks (and past 8 of them,
          // every further one copies the whole context). `provideContext`
          // merges into a flat copy: our scope costs the requests no depth,
          // where `Scope.provide` would have added one.
          yield* (middleware === undefined ? inner.serve(app) : inner.serve(app, middleware)).pipe(
            Effect.provideContext(Context.make(Scope.Scope, serving))
          )
          // The cut: handlers still running are interrupted (a 503 where no
          // headers went out, a WebSocket's 1001), their last writes get a turn
          // of the event loop, then what is still in flight is destroyed as
          // `layerNode`'s cut does: a response no client reads, a silent peer.
          const cut = Scope.close(serving, Exit.void).pipe(
            Effect.andThen(Effect.callback<void>((resume) => void setImmediate(() => resume(Effect.void)))),
            Effect.andThen(Effect.sync(() => connections.cut()))
          )
          yield* serve.drainOnClose(quit, connections, options, { cut }).pipe(Effect.orDie)
          connections.adopt(probes)
        })
    })
    return Context.make(HttpServer.HttpServer, served).pipe(Context.add(Closing, makeClosing(connections)))
  }))

// PORT (default 3000; 0 picks a free port) and HOST (default: every
// interface), through Effect's `Config`; a bad value is an `InvalidOption`.
const listenSettings = read(Config.all({
  port: Config.schema(Schema.Port, "PORT").pipe(Config.withDefault(3000)),
  host: Config.String("HOST").pipe(Config.option, Config.map(Option.getOrUndefined))
}))

/**
 * {@link layer}, listening on `PORT` (default 3000; 0 picks a free port) and
 * `HOST` (default: every interface) from the environment. A `PORT` that is not
 * a port fails with `InvalidOption` naming it and its value.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { HttpRouter, HttpServerResponse } from "effect/http"
 * import { createServer } from "node:http"
 * import { Http, Main } from "effect-graceful"
 * const Routes = HttpRouter.add("GET", "/", HttpServerResponse.text("hello"))
 * Main.runMain(HttpRouter.serve(Routes).pipe(Layer.provide(Http.layerConfig(() => createServer(), { health: true }))))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = <S extends NodeServer>(evaluate: Evaluate<S>, options: Omit<EffectOptions, "port" | "host"> = {}) =>
  Layer.unwrap(Effect.map(preflight.declare(listenSettings), (where) => layer(evaluate, { ...options, ...where })))

/**
 * {@link layerNode}, listening on `PORT` and `HOST` as {@link layerConfig}
 * does.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http"
 * import { Http, Main } from "effect-graceful"
 * Main.runMain(Http.layerNodeConfig(() => createServer((_req, res) => res.end("hello"))))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerNodeConfig = <S extends NodeServer>(evaluate: Evaluate<S>, options: Omit<NodeOptions, "port" | "host"> = {}) =>
  Layer.unwrap(Effect.map(preflight.declare(listenSettings), (where) => layerNode(evaluate, { ...options, ...where })))
