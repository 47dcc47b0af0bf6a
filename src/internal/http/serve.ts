/**
 * Serving a Node server gracefully, for every layer of `Http`: the setup its
 * factory gets, its connections on the quit event's clock, and its group —
 * the order of the shutdown's steps, written where they happen.
 *
 * @internal
 */
import type { Scope } from "effect"
import { Duration, Effect } from "effect"
import { first } from "../core/first.ts"
import * as groups from "../core/group.ts"
import { type DurationInput, type InvalidOption, shortestDrainDelay } from "../core/options.ts"
import type { QuitImpl } from "../core/quit.ts"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import { Connections, type NodeServer } from "./connections.ts"
import { type BindError, describeAddress, listen } from "./listen.ts"
import * as probes from "./probes.ts"

/** Documented on the public `Http` module. @internal */
export interface Options {
  readonly name?: string | undefined
  readonly drainTimeout?: DurationInput | undefined
  readonly closeTimeout?: DurationInput | undefined
  readonly health?: boolean | probes.ProbeOptions | undefined
}

/** Documented on the public `Http` module. @internal */
export interface WebSocketServer {
  readonly clients: Iterable<{ close(code?: number, reason?: string): void }>
}

/** Documented on the public `Http` module. @internal */
export interface Setup {
  readonly closing: AbortSignal
  readonly webSockets: <W extends WebSocketServer>(server: W) => W
}

/** The setup for a server's factory: the closing signal, and the WebSocket servers to say "going away" to. @internal */
export const setupFor = (controller: AbortController): Setup => ({
  closing: controller.signal,
  webSockets: (wss) => {
    controller.signal.addEventListener("abort", () => {
      for (const client of wss.clients) client.close(1001, "going away")
    }, { once: true })
    return wss
  }
})

/**
 * How long a connection that carries nothing may still send a request once
 * the listener has closed: long enough for a request already on the wire, far
 * shorter than any timeout; never longer than the close timeout.
 */
const GRACE_MILLIS = 1000

/** A server's connections, on the quit event's clock. @internal */
export const connectionsOf = (quit: QuitImpl, server: NodeServer, controller: AbortController, own: groups.Timeouts) =>
  new Connections(
    server,
    controller,
    { millis: () => quit.millis(), schedule: (millis, f) => quit.schedule(millis, f) },
    Math.min(GRACE_MILLIS, Duration.toMillis(own.closeTimeout)),
    Duration.toMillis(shortestDrainDelay(quit.options)),
    () => quit.routing.request(quit.now())
  )

/** The probes a server answers itself, if it answers any. @internal */
export const intercept = (quit: QuitImpl, health: Options["health"]): Effect.Effect<probes.Handler | undefined> =>
  health === undefined || health === false ? Effect.succeed(undefined) : probes.makeHandler(quit, health === true ? {} : health)

/** The options left for `listen`. @internal */
export const listenOptions = <O extends Options>(options: O) => {
  const { closeTimeout: _c, drainTimeout: _d, health: _h, name: _n, ...rest } = options
  return rest
}

/** How a kind of server stops and is cut; by default as a plain Node server. @internal */
export interface Steps {
  /** Step 1: the listener closes. Synchronous, in the turn the drain delay ends. */
  readonly stop?: (() => void) | undefined
  /** Step 1, when the scope closes without the quit event (or `stop` waits on the app). */
  readonly onStop?: Effect.Effect<void, unknown> | undefined
  /** Step 4. */
  readonly cut: Effect.Effect<void>
  /** After step 5, within the close deadline and the server's row: the app's own close. */
  readonly close?: Effect.Effect<void, unknown> | undefined
}

/**
 * Registers the server with the quit event for the lifetime of the current
 * scope and returns its group. From the quit event on, HTTP/1 responses carry
 * `Connection: close` and HTTP/2 sessions get the shutdown notice (clients
 * move to new connections while the listener still takes them). Then, in
 * this order:
 *
 * 1. at the end of the drain delay — in that very turn — the listener closes:
 *    new connections are refused; responses whose headers are unsent will
 *    carry `Connection: close`; a connection that carries nothing is closed,
 *    unless it is in its grace for a request already on the wire (its last
 *    response ended less than the grace ago, it has no request yet, or its
 *    next request is half received); HTTP/2 sessions get the final GOAWAY one
 *    round trip after the notice; registered WebSocket servers say 1001
 *    "going away"; the closing signal aborts;
 * 2. each response that ends closes its connection (no keep-alive linger); one
 *    whose headers said keep-alive waits the grace for a request already sent;
 * 3. the moment the last request in flight ends, the drain is done;
 * 4. at the drain deadline, what is still in flight is cut;
 * 5. the connections left (none in flight) are destroyed once their grace is
 *    over, sessions close after their last frames, and the server's `close`
 *    ends it; then the app's own close, if it has one — all by the close
 *    deadline.
 *
 * @internal
 */
export const drainOnClose = (
  quit: QuitImpl,
  connections: Connections,
  options: Options,
  steps: Steps
): Effect.Effect<groups.Group, InvalidOption, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "http"
    const { closeTimeout } = yield* groups.timeouts(quit, name, options)
    const closedBy = (deadline: "close" | "shutdown") =>
      first(
        Effect.as(connections.awaitClosed, true),
        Effect.as(quit.until(quit.now() + Duration.toMillis(closeTimeout), deadline), false)
      )
    const stop = steps.stop ?? (() => connections.stop())
    const { group, inFlight } = yield* groups.make(quit, name, {
      kind: "http",
      drainTimeout: options.drainTimeout,
      closeTimeout: options.closeTimeout,
      // Keep-alive ends from the quit event on.
      onFire: () => connections.endKeepAlive(),
      onStopping: stop,
      onStop: steps.onStop ?? Effect.sync(stop),
      onCut: steps.cut,
      close: steps.close === undefined ? undefined : (stuck) =>
        Effect.andThen(Effect.sync(() => connections.destroyRest(stuck > 0)), steps.close ?? Effect.void),
      // Step 5, whatever ended the drain.
      afterDrain: (stuck) =>
        Effect.gen(function*() {
          connections.destroyRest(stuck > 0)
          if (yield* closedBy("close")) return
          connections.destroyRest(true)
          // Destroyed sockets close at once; the wait is bounded all the same.
          if (!(yield* closedBy("shutdown"))) yield* Effect.logWarning(`${name}: connections still open after they were destroyed`)
        })
    })
    connections.count(inFlight)
    return group
  })

/** A server served: its group and its connections. @internal */
export interface Served {
  readonly group: groups.Group
  readonly connections: Connections
}

/**
 * Serves a Node server made by `server(setup)`: its requests are seen from
 * before it listens, so that none reaches the app unseen; the group is
 * registered, and counting begins, once it listens, so that a bind error
 * leaves no row in the report. `steps` overrides how it stops (default: a
 * plain Node server's — the listener closes, the cut destroys what is in
 * flight).
 *
 * @internal
 */
export const serveNode = <O extends Options & Net.ListenOptions>(
  quit: QuitImpl,
  server: NodeServer,
  controller: AbortController,
  own: groups.Timeouts,
  options: O,
  steps: (connections: Connections) => Partial<Steps> = () => ({})
): Effect.Effect<Served, BindError | InvalidOption, Scope.Scope> =>
  Effect.gen(function*() {
    const answer = yield* intercept(quit, options.health)
    const connections = connectionsOf(quit, server, controller, own)
    connections.adopt(answer)
    yield* listen(server, listenOptions(options), options.name ?? "http")
    const group = yield* drainOnClose(quit, connections, options, {
      cut: Effect.sync(() => connections.cut()),
      ...steps(connections)
    })
    yield* Effect.logInfo(`${group.name} listening on ${describeAddress(server, server instanceof Tls.Server ? "https" : "http")}`)
    return { group, connections }
  })
