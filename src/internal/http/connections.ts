/**
 * What a graceful HTTP server must know about its connections, and the ways to
 * close them. Every connection is tracked from the moment TCP accepts it —
 * during its TLS handshake, silent, carrying HTTP/1 requests, as an HTTP/2
 * session, upgraded — so that none can hold the shutdown, whatever the server
 * kind (http, https, http2 h2c and TLS, with or without `allowHTTP1`).
 *
 * Everything here is driven by Node's events and the quit event's clock;
 * nothing polls.
 *
 * @internal
 */
import { Deferred, Effect, Exit } from "effect"
import type { EventEmitter } from "node:events"
import type * as Http from "node:http"
import type * as Http2 from "node:http2"
import { constants as Http2Constants } from "node:http2"
import type * as Https from "node:https"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import { type InFlight, Tally } from "../core/inFlight.ts"
import { Connection, type Schedule, type Shared } from "./connection.ts"

export type { Schedule } from "./connection.ts"

/** The servers we can drain: node:http, node:https, node:http2 (h2c and TLS). */
export type NodeServer = Http.Server | Https.Server | Http2.Http2Server | Http2.Http2SecureServer

/** A request as any of those servers emit it. */
export type Request = Http.IncomingMessage | Http2.Http2ServerRequest
/** A response as any of those servers emit it. */
export type Response = Http.ServerResponse | Http2.Http2ServerResponse

/** Answers a request itself (readiness, liveness) and returns `true`, or lets it through. */
export type Intercept = (request: Request, response: Response) => boolean

/** The quit event's clock, as the connections use it. */
export interface Clock {
  /** Milliseconds; only differences are read. */
  readonly millis: () => number
  readonly schedule: Schedule
}

const stopListening: (this: Net.Server, callback: () => void) => void = Net.Server.prototype.close
const noop = () => {}

/** Counts `response` on its own: in flight until it closes. */
const countOne = (response: Response, counter: InFlight): void => {
  counter.add()
  const emitter: EventEmitter = response
  emitter.on("close", counter.done)
}

/**
 * Closes the listener and nothing else; `callback` runs once every connection
 * is gone. For an HTTP server that is Node's own `close` (which also ends its
 * timeout checks of requests and headers), but for its `closeIdleConnections`:
 * which connections are idle, and which keep a grace, is ours to say.
 */
const closeListener = (server: NodeServer, close: (callback: () => void) => void, callback: () => void): void => {
  if (!("closeIdleConnections" in server)) return stopListening.call(server, callback)
  Object.defineProperty(server, "closeIdleConnections", { value: noop, configurable: true, writable: true })
  try {
    close.call(server, callback)
  } finally {
    delete (server as { closeIdleConnections?: unknown }).closeIdleConnections
  }
}

// A TLS socket's `_parent` is the socket TCP accepted, which it wraps.
const connectionOf = (tls: Net.Socket): Connection | undefined =>
  Connection.of((tls as Net.Socket & { readonly _parent?: Net.Socket })._parent ?? tls)

/** The connections of one server, from its creation to its close. */
export class Connections {
  readonly #server: NodeServer
  // The server's own `close`, taken before anyone (a framework) puts another in its place.
  readonly #close: (callback: () => void) => void
  readonly #controller: AbortController
  readonly #all = new Set<Connection>()
  // Whether each HTTP/1 response's end is noted before the quit event too:
  // when the listener may close less than the grace after it.
  readonly #stampAlways: boolean
  readonly #closed = Deferred.makeUnsafe<void>()
  #inFlight: InFlight | undefined
  // HTTP/1 requests are tallied, read off their connections (a response not
  // yet finished is one in flight), until somebody waits for them or the
  // server begins to close; from then on counted one by one, until their
  // response closes. A listener per request is the largest cost we would add
  // to a hello world. A pipelined request behind the latest is not counted,
  // but cannot end later than it: Node writes a connection's responses in order.
  readonly #tally = new Tally<Response>({
    busy: () => this.#unfinished(),
    busyCount: () => {
      let n = 0
      for (const connection of this.#all) if (connection.current !== undefined) n++
      return n
    },
    handOver: (response, counter) => countOne(response, counter)
  })
  // From the quit event: keep-alive ends with each response, HTTP/2 sessions
  // have had their notice.
  #ending = false
  // From the end of the drain delay: the listener is closed.
  #closing = false
  readonly #routed: () => void

  /**
   * `grace` is how long a connection with no request in progress may still
   * send one once the listener has closed: a request already on the wire (a
   * proxy's, a keep-alive client's queued one) is served, not reset.
   * `drainDelay`: how long after the quit event the listener closes, at the
   * soonest. `routed` hears each request from the quit event on (probes aside).
   */
  constructor(server: NodeServer, controller: AbortController, clock: Clock, grace: number, drainDelay: number, routed: () => void) {
    this.#server = server
    this.#routed = routed
    this.#close = server.close
    this.#controller = controller
    const shared: Shared = { all: this.#all, schedule: clock.schedule, millis: clock.millis, grace }
    this.#stampAlways = drainDelay < grace
    // Listened to before the server listens, so that no connection escapes
    // us, and before the server's own listener: an HTTP/2 server starts its
    // session (and emits `session`) in there.
    server.prependListener("connection", (raw: Net.Socket) => {
      const connection = new Connection(raw, shared)
      if (this.#closing) connection.stop()
    })
    // The same for TLS: a secure HTTP/2 server starts its session on `secureConnection`.
    server.prependListener("secureConnection", (tls: Net.Socket) => connectionOf(tls)?.secured(tls))
    server.on("stream", (stream: Http2.ServerHttp2Stream) => {
      const socket = stream.session?.socket
      if (socket !== undefined) Connection.of(socket)?.opened(stream)
    })
    server.on("session", (session: Http2.ServerHttp2Session) => {
      const connection = Connection.of(session.socket)
      if (connection === undefined) return
      connection.started(session)
      if (this.#ending) connection.notice()
      if (this.#closing) connection.stop()
    })
  }

  get isClosing(): boolean {
    return this.#closing
  }

  /** Aborted when the server begins to close (its listener closes). */
  get signal(): AbortSignal {
    return this.#controller.signal
  }

  /** Whether the listener is closed and every connection gone. */
  get isClosed(): boolean {
    return Deferred.isDoneUnsafe(this.#closed)
  }

  /** Completes when the listener is closed and every connection is gone. */
  get awaitClosed(): Effect.Effect<void> {
    return Deferred.await(this.#closed)
  }

  /**
   * Counts the requests from now on in `inFlight`: each from its arrival
   * until its response closes, each upgraded connection until its socket
   * closes. HTTP/1 requests that arrived before are counted too (they are
   * read off their connections); HTTP/2 ones and upgrades are not.
   */
  count(inFlight: InFlight): void {
    this.#inFlight = inFlight
    this.#tally.attach(inFlight)
  }

  *#unfinished(): Iterable<Response> {
    for (const connection of this.#all) {
      const response = connection.current
      if (response !== undefined) yield response
    }
  }

  // HTTP/1: tallied, or counted on its own once each is; HTTP/2: on its own.
  #start(response: Response, http1: boolean): void {
    const counter = http1 ? this.#tally.start() : this.#inFlight
    if (counter !== undefined) countOne(response, counter)
  }

  /**
   * Sees every `request`, `checkContinue` and `upgrade` the server emits before
   * its listeners do, through the server's own `emit`: each request is counted
   * before the app sees it, and health probes are answered without reaching the
   * app. The app's listeners stay where they are — added before or after this,
   * counted by `listenerCount` as the app left them (`NodeHttpServer` answers
   * 503 itself while it counts no listener of its own) — as OpenTelemetry's
   * HTTP instrumentation does.
   */
  adopt(intercept: Intercept | undefined): void {
    const emitter: EventEmitter = this.#server
    const emit = emitter.emit
    // Called for every event of the server: one comparison for the others.
    // `arguments` forwards them as they came, with no array made.
    const self = this
    emitter.emit = function(this: EventEmitter, event: string | symbol, first?: unknown, second?: unknown): boolean {
      if (event === "request") {
        if (!self.#request(first as Request, second as Response, intercept)) return true
      } else if (event === "checkContinue") self.#continue(first as Request, second as Response)
      else if (event === "upgrade") self.#upgraded(second as Duplex)
      return Reflect.apply(emit, this, arguments) as boolean
    }
  }

  // Called once per request: no closure, no allocation; a field read where a
  // type test would do. False when the request must not reach the app.
  #request(request: Request, response: Response, intercept: Intercept | undefined): boolean {
    // HTTP/1 (also through an HTTP/2 server with `allowHTTP1`): the response
    // is a `ServerResponse` on a socket of its own.
    const http1 = request.httpVersionMajor === 1
    if (http1 && !this.#admit(request.socket, response as Http.ServerResponse)) return false
    // Probes are answered here, and are no work of the app's: not counted.
    if (intercept !== undefined && intercept(request, response)) return false
    // From the quit event, each request is evidence that routing here goes on.
    if (this.#ending) this.#routed()
    this.#start(response, http1)
    return true
  }

  // The app answers these itself; a request that must not run (see
  // `Connection.admits`) cannot be held back here, so it is counted as any.
  #continue(request: Request, response: Response): void {
    if (this.#ending) this.#routed()
    const http1 = request.httpVersionMajor === 1
    if (http1) this.#admit(request.socket, response as Http.ServerResponse)
    this.#start(response, http1)
  }

  /** Records one HTTP/1 request on its connection; false when it must not run (see `Connection.admits`). */
  #admit(socket: Net.Socket, response: Http.ServerResponse): boolean {
    const connection = Connection.of(socket)
    if (connection === undefined) return true
    if (this.#ending && !connection.admits(response)) return false
    connection.serve(response, this.#stampAlways || this.#ending, this.#ending)
    if (this.#ending) connection.endAfter(response, this.#closing)
    return true
  }

  #upgraded(socket: Duplex): void {
    if (this.#ending) this.#routed()
    const connection = Connection.of(socket as Net.Socket)
    const inFlight = this.#inFlight
    inFlight?.add()
    connection?.upgraded()
    socket.once("close", () => inFlight?.done())
  }

  /**
   * From the quit event, through the drain delay: responses whose headers are
   * unsent carry `Connection: close` and close their connection when they end,
   * so that clients stop reusing connections while the listener still takes
   * new ones; HTTP/2 sessions get the shutdown notice (GOAWAY with the last
   * stream id 2^31−1, RFC 9113 §6.8) and a PING, so that their clients open
   * new streams elsewhere. Idle connections are left alone: closing them now
   * would race their clients just the same.
   */
  endKeepAlive(): void {
    if (this.#ending) return
    this.#ending = true
    for (const connection of this.#all) {
      const response = connection.current
      if (response !== undefined) {
        if (!this.#stampAlways) connection.watch(response)
        if (!response.headersSent) connection.endAfter(response, false)
      }
      connection.notice()
    }
  }

  /**
   * Stops intake: the listener closes (new connections are refused); each
   * connection is closed the moment it carries nothing — idle keep-alive ones
   * at once; ones with no request yet (a TLS handshake in progress, a proxy's
   * request on the wire) after the grace; busy ones after their response,
   * which carries `Connection: close` if its headers are still unsent; HTTP/2
   * sessions get the final GOAWAY one round trip after the notice, their open
   * streams go on.
   */
  stop(): void {
    if (this.#closing) return
    this.endKeepAlive()
    this.#closing = true
    this.#tally.countEach()
    closeListener(this.#server, this.#close, () => Deferred.doneUnsafe(this.#closed, Exit.void))
    for (const connection of this.#all) connection.stop()
    this.#controller.abort()
  }

  /**
   * At the cut: destroys what is still in flight, so that it ends now — every
   * HTTP/1 connection with a response unfinished, every session (CANCEL tells
   * the client its streams were cut, not completed), every upgraded socket.
   */
  cut(): void {
    for (const connection of [...this.#all]) connection.cut(Http2Constants.NGHTTP2_CANCEL)
  }

  /**
   * After the drain: destroys the connections that carry nothing, and with
   * `force` every connection left. A session that got GOAWAY closes itself
   * once its streams end, after flushing them; a connection in its grace
   * keeps it, unless forced.
   */
  destroyRest(force: boolean): void {
    for (const connection of [...this.#all]) connection.destroyIfIdle(force, Http2Constants.NGHTTP2_CANCEL)
  }
}
