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
// The module, not the package's index: the index loads every Node service
// (undici among them), ~30 MB and ~150 ms at start that a server never uses.
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as NodeServices from "@effect/platform-node/NodeServices"
import { Config, Context, Duration, Effect, Exit, Layer, Option, Schema, Scope, Stream } from "effect"
import type { Etag, HttpPlatform } from "effect/http"
import { HttpServer } from "effect/http"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import * as Health from "./Health.ts"
import * as probes from "./internal/http/probes.ts"
import { read } from "./internal/core/configError.ts"
import { first } from "./internal/core/first.ts"
import * as groups from "./internal/core/group.ts"
import type { InvalidOption } from "./internal/core/options.ts"
import { current, type QuitImpl } from "./internal/core/quit.ts"
import { Connections, type NodeServer } from "./internal/http/connections.ts"
import { type BindError, bindError, describeAddress, listen, where } from "./internal/http/listen.ts"
import type { DurationInput } from "./Options.ts"
import type * as Quit from "./Quit.ts"

export {
  /**
   * The server could not listen (port in use, no permission, foreign host);
   * `address` names what was asked for. The layer fails with it, and whatever
   * else was acquired is released.
   *
   * @since 0.1.0
   */
  BindError
} from "./internal/http/listen.ts"

/**
 * How a server drains, shared by both layers.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Its name in the report, logs and metrics. Default `http`. */
  readonly name?: string | undefined
  /** A drain timeout of its own: shorter than the shared one, never longer. */
  readonly drainTimeout?: DurationInput | undefined
  /** Bounds cutting and the final close, after the cut: shorter than the shared close timeout, never longer. */
  readonly closeTimeout?: DurationInput | undefined
  /** Answer readiness and liveness on this server (`true`: `/readyz` and `/livez`). */
  readonly health?: boolean | Health.ProbeOptions | undefined
}

/**
 * Options of {@link layerNode}: drain options and where to listen. For 1,000s
 * of connections arriving at once, raise `backlog`.
 *
 * @since 0.1.0
 */
export interface NodeOptions extends Options, Net.ListenOptions {}

/**
 * Options of {@link layer}: drain options, where to listen, and the options of
 * `NodeHttpServer` that still apply (`websocket`).
 *
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
 * @since 0.1.0
 */
export interface WebSocketServer {
  readonly clients: Iterable<{ close(code?: number, reason?: string): void }>
}

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
 * @since 0.1.0
 */
export interface Setup {
  readonly closing: AbortSignal
  readonly webSockets: <W extends WebSocketServer>(server: W) => W
}

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
 * @since 0.1.0
 */
export type Evaluate<S extends NodeServer> = (setup: Setup) => S

/** The setup for `evaluate`: the closing signal, and the WebSocket servers to say "going away" to. */
const setupFor = (controller: AbortController): Setup => ({
  closing: controller.signal,
  webSockets: (wss) => {
    controller.signal.addEventListener("abort", () => {
      for (const client of wss.clients) client.close(1001, "going away")
    }, { once: true })
    return wss
  }
})

/**
 * The closing of the server that serves the current Effect app: long-lived
 * responses (server-sent events, streams, WebSockets) watch it to end
 * themselves cleanly — with a last event — before the drain deadline cuts
 * them. It comes at the end of the drain delay, when the listener closes (the
 * quit event, `Quit.fired`, comes earlier: at its start). Provided by
 * {@link layer}; use {@link closing} and {@link endOnClose} rather than its
 * members.
 *
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
 * Registers the server with the quit event for the lifetime of the current
 * scope and returns its group. From the quit event on, HTTP/1 responses carry
 * `Connection: close` and HTTP/2 sessions get the shutdown notice (clients
 * move to new connections while the listener still takes them). When the
 * scope closes — after the drain delay — in this order:
 *
 * 1. the listener closes: new connections are refused; idle keep-alive
 *    connections are closed; responses whose headers are unsent will carry
 *    `Connection: close`; a connection with no request yet (a TLS handshake,
 *    a request still on the wire) has the grace to send one; HTTP/2 sessions
 *    get the final GOAWAY one round trip after the notice; registered
 *    WebSocket servers say 1001 "going away"; the closing signal aborts;
 * 2. each response that ends closes its connection (no keep-alive linger); one
 *    whose headers said keep-alive waits the grace for a request already sent;
 * 3. the moment the last request in flight ends, the drain is done;
 * 4. at the drain deadline, what is still in flight is cut: `cut` interrupts
 *    Effect handlers (a 503 if no headers were sent) or destroys the sockets of
 *    plain handlers;
 * 5. the connections left (none in flight) are destroyed once their grace is
 *    over, sessions close after their last frames, and the server's `close`
 *    ends it — all by the close deadline.
 */
const drainOnClose = (
  quit: QuitImpl,
  connections: Connections,
  options: Options,
  cut: Effect.Effect<void>
): Effect.Effect<Quit.Group, InvalidOption, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "http"
    const { closeTimeout } = yield* groups.timeouts(quit, name, options)
    const closedBy = (deadline: "close" | "shutdown") =>
      first(
        Effect.as(connections.awaitClosed, true),
        Effect.as(quit.until(quit.now() + Duration.toMillis(closeTimeout), deadline), false)
      )
    const group = yield* groups.make(quit, name, {
      kind: "http",
      drainTimeout: options.drainTimeout,
      closeTimeout: options.closeTimeout,
      // Step 1 for keep-alive: responses say `Connection: close` from the quit event on.
      onFire: () => connections.endKeepAlive(),
      onStop: Effect.sync(() => connections.stop()),
      onCut: cut,
      // Step 5, once the drain is over.
      afterDrain: (stuck) =>
        Effect.gen(function*() {
          connections.destroyRest(stuck > 0)
          if (yield* closedBy("close")) return
          connections.destroyRest(true)
          // Destroyed sockets close at once; the wait is bounded all the same.
          if (!(yield* closedBy("shutdown"))) yield* Effect.logWarning(`${name}: connections still open after they were destroyed`)
        })
    })
    connections.count(quit.find(group.name)!.inFlight!)
    return group
  })

/**
 * How long a connection with no request in progress may still send one once
 * the listener has closed: long enough for a request already on the wire, far
 * shorter than any timeout; never longer than the close timeout.
 */
const GRACE_MILLIS = 1000
const grace = (own: groups.Timeouts) => Math.min(GRACE_MILLIS, Duration.toMillis(own.closeTimeout))

const clock = (quit: QuitImpl) => ({ now: () => quit.now(), schedule: (millis: number, f: () => void) => quit.schedule(millis, f) })

const intercept = (quit: QuitImpl, health: Options["health"]) =>
  health === undefined || health === false ? undefined : probes.makeHandler(quit, health === true ? {} : health)

const split = <O extends Options>(options: O) => {
  const { closeTimeout: _c, drainTimeout: _d, health: _h, name: _n, ...rest } = options
  return rest
}

/**
 * Serves a plain Node server gracefully: the server your framework made, with
 * its request listeners on (Express, Koa: `createServer(app)`; Fastify:
 * `fastify.server` after `ready()`; `node:http2` with a compatibility handler).
 * It listens when the layer is built and drains when its scope closes; at the
 * drain deadline the sockets still in flight are destroyed.
 *
 * Requests are counted as they arrive and until their response closes;
 * upgraded connections (WebSockets) until their socket closes — also through
 * `upgrade` and `checkContinue` listeners the app adds after the layer is
 * built. (Add `request` listeners before: health probes are answered before
 * they reach them.) Every connection is tracked from TCP accept, so none —
 * not a TLS handshake that never finishes — can hold the shutdown.
 *
 * @example
 * ```ts
 * import express from "express"
 * import { createServer } from "node:http"
 * import { Http, Main } from "effect-graceful"
 * const app = express().get("/", (_req, res) => res.send("hello"))
 * Main.runMain(Http.layerNode(() => createServer(app), { port: 8080, health: true }))
 * ```
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
    const server = evaluate(setupFor(controller))
    const connections = new Connections(server, controller, clock(quit), grace(own))
    // The app's listeners are adopted before the server listens, so that no
    // request reaches them unseen; the group is registered, and counting
    // begins, once it listens, so that a bind error leaves no row in the report.
    connections.adopt(intercept(quit, options.health))
    yield* listen(server, split(options), options.name ?? "http")
    const group = yield* drainOnClose(quit, connections, options, Effect.sync(() => connections.cut()))
    yield* Effect.logInfo(`${group.name} listening on ${describeAddress(server, server instanceof Tls.Server ? "https" : "http")}`)
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
 * @since 0.1.0
 */
export const layer = <S extends NodeServer>(
  evaluate: Evaluate<S>,
  options: EffectOptions = {}
): Layer.Layer<
  HttpServer.HttpServer | Closing | NodeServices.NodeServices | HttpPlatform.HttpPlatform | Etag.Generator,
  BindError | InvalidOption,
  Quit.Quit
> => Layer.mergeAll(layerServer(evaluate, options), NodeHttpServer.layerHttpServices)

const layerServer = <S extends NodeServer>(evaluate: Evaluate<S>, options: EffectOptions) =>
  Layer.effectContext(Effect.gen(function*() {
    const quit = yield* current
    // Checked before anything is acquired.
    const own = yield* groups.timeouts(quit, options.name ?? "http", options)
    const controller = new AbortController()
    const server = evaluate(setupFor(controller))
    const connections = new Connections(server, controller, clock(quit), grace(own))
    const nodeOptions = where(options.name ?? "http", split(options))
    const inner = yield* NodeHttpServer.make(() => server, nodeOptions).pipe(
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
          yield* drainOnClose(quit, connections, options, Scope.close(serving, Exit.void)).pipe(Effect.orDie)
          connections.adopt(intercept(quit, options.health))
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
 * @since 0.1.0
 */
export const layerConfig = <S extends NodeServer>(evaluate: Evaluate<S>, options: Omit<EffectOptions, "port" | "host"> = {}) =>
  Layer.unwrap(Effect.map(listenSettings, (where) => layer(evaluate, { ...options, ...where })))

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
 * @since 0.1.0
 */
export const layerNodeConfig = <S extends NodeServer>(evaluate: Evaluate<S>, options: Omit<NodeOptions, "port" | "host"> = {}) =>
  Layer.unwrap(Effect.map(listenSettings, (where) => layerNode(evaluate, { ...options, ...where })))
