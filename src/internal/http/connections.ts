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
import type { InFlight } from "../core/inFlight.ts"
import { Connection } from "./connection.ts"

/** The servers we can drain: node:http, node:https, node:http2 (h2c and TLS). */
export type NodeServer = Http.Server | Https.Server | Http2.Http2Server | Http2.Http2SecureServer

/** A request as any of those servers emit it. */
export type Request = Http.IncomingMessage | Http2.Http2ServerRequest
/** A response as any of those servers emit it. */
export type Response = Http.ServerResponse | Http2.Http2ServerResponse

/** Answers a request itself (readiness, liveness) and returns `true`, or lets it through. */
export type Intercept = (request: Request, response: Response) => boolean

/** Runs `f` after `millis` on the quit event's clock; the returned function cancels it. */
export type Schedule = (millis: number, f: () => void) => () => void

/** The quit event's clock, as the connections use it. */
export interface Clock {
  readonly now: () => number
  readonly schedule: Schedule
}

// Not finished, and not destroyed: a destroyed response has emitted its
// `close`, or is about to, and must not be waited for.
const isUnfinished = (response: Http.ServerResponse): boolean => !response.writableFinished && !response.destroyed

const stopListening: (this: Net.Server, callback: () => void) => void = Net.Server.prototype.close

// A TLS socket's `_parent` is the socket TCP accepted, which it wraps.
const connectionOf = (tls: Net.Socket): Connection | undefined =>
  Connection.of((tls as Net.Socket & { readonly _parent?: Net.Socket })._parent ?? tls)

/** The connections of one server, from its creation to its close. */
export class Connections {
  readonly #server: NodeServer
  readonly #controller: AbortController
  readonly #schedule: Schedule
  readonly #now: () => number
  readonly #grace: number
  readonly #all = new Set<Connection>()
  readonly #closed = Deferred.makeUnsafe<void>()
  #inFlight: InFlight | undefined
  // HTTP/1 requests are counted from their connections (a response not yet
  // finished is one in flight) until somebody waits for them or the server
  // begins to close; from then on one by one, until their response closes. A
  // listener per request is the largest cost we would add to a hello world.
  #eachCounted = false
  #startedUncounted = 0
  // From the quit event: keep-alive ends with each response, HTTP/2 sessions
  // have had their notice.
  #ending = false
  // From the end of the drain delay: the listener is closed.
  #closing = false

  /**
   * `grace` is how long a connection with no request in progress may still
   * send one once the listener has closed: a request already on the wire (a
   * proxy's, a keep-alive client's queued one) is served, not reset.
   */
  constructor(server: NodeServer, controller: AbortController, clock: Clock, grace: number) {
    this.#server = server
    this.#controller = controller
    this.#schedule = clock.schedule
    this.#now = clock.now
    this.#grace = grace
    const all = this.#all
    // Listened to before the server listens, so that no connection escapes
    // us, and before the server's own listener: an HTTP/2 server starts its
    // session (and emits `session`) in there.
    server.prependListener("connection", (raw: Net.Socket) => {
      const connection = new Connection(raw, all)
      if (this.#closing) connection.awaitRequest(this.#schedule, this.#grace)
    })
    // The same for TLS: a secure HTTP/2 server starts its session on `secureConnection`.
    server.prependListener("secureConnection", (tls: Net.Socket) => connectionOf(tls)?.secured(tls))
    server.on("stream", (stream: Http2.ServerHttp2Stream) => Connection.of(stream.session!.socket)?.opened(stream))
    server.on("session", (session: Http2.ServerHttp2Session) => {
      const connection = Connection.of(session.socket)
      if (connection === undefined) return
      connection.started(session)
      if (this.#ending) connection.notice(this.#now())
      if (this.#closing) connection.goaway(this.#schedule, this.#grace, this.#now())
    })
  }

  get isClosing(): boolean {
    return this.#closing
  }

  /** Aborted when the server begins to close (its listener closes). */
  get signal(): AbortSignal {
    return this.#controller.signal
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
    inFlight.adopt({
      inFlight: () => this.#eachCounted ? 0 : this.#unfinished(),
      started: () => this.#startedUncounted,
      countEach: () => this.#countEach()
    })
  }

  #unfinished(): number {
    let n = 0
    for (const connection of this.#all) if (connection.current !== undefined) n++
    return n
  }

  // A pipelined request behind the latest is not counted, but cannot end
  // later than the latest: Node writes the responses of a connection in order.
  #countEach(): void {
    if (this.#eachCounted) return
    this.#eachCounted = true
    for (const connection of this.#all) {
      const response = connection.current
      if (response !== undefined) {
        this.#startedUncounted--
        this.#countOne(response)
      }
    }
  }

  #countOne(response: Response): void {
    const inFlight = this.#inFlight
    if (inFlight === undefined) return
    inFlight.add()
    const emitter: EventEmitter = response
    emitter.on("close", inFlight.done)
  }

  /**
   * Becomes the one listener of `request` and forwards to the app's listeners,
   * so that every request is counted before the app sees it and health probes
   * are answered without reaching the app. `checkContinue` and `upgrade` are
   * counted by a listener of ours beside the app's, also when the app adds
   * its own after this (a WebSocket library in a layer on top). Call it once
   * the app's request listeners are on.
   */
  adopt(intercept: Intercept | undefined): void {
    const server = this.#server
    const listeners = server.listeners("request")
    // Called once per request: no closure, no rest arguments, no `once`
    // wrapper, no map; a field read where a type test would do.
    const onRequest = (request: Request, response: Response) => {
      // HTTP/1 (also through an HTTP/2 server with `allowHTTP1`): the response
      // is a `ServerResponse` on a socket of its own.
      const http1 = request.httpVersionMajor === 1
      if (http1 && !this.#admit(request.socket, response as Http.ServerResponse)) return
      // Probes are answered here, and are no work of the app's: not counted.
      if (intercept !== undefined && intercept(request, response)) return
      if (http1 && !this.#eachCounted) this.#startedUncounted++
      else this.#countOne(response)
      for (const listener of listeners) listener.call(server, request, response)
    }
    server.removeAllListeners("request")
    server.on("request", onRequest)
    // The app answers these itself; a request that must not run (see
    // `Connection.admits`) cannot be held back here, so it is counted as any.
    const onContinue = (request: Request, response: Response) => {
      const http1 = request.httpVersionMajor === 1
      if (http1) this.#admit(request.socket, response as Http.ServerResponse)
      if (http1 && !this.#eachCounted) this.#startedUncounted++
      else this.#countOne(response)
    }
    const onUpgrade = (_request: Request, socket: Duplex) => this.#upgraded(socket)
    // Node emits `checkContinue` and `upgrade` only while somebody listens:
    // ours comes with the app's first one, not before.
    const emitter: EventEmitter = server
    const beside = (event: string, listener: (request: Request, second: Response & Duplex) => void) => {
      let installed = false
      const install = () => {
        if (installed) return
        installed = true
        emitter.prependListener(event, listener)
      }
      if (emitter.listenerCount(event) > 0) install()
      emitter.on("newListener", (added: string | symbol) => added === event && install())
    }
    beside("checkContinue", onContinue)
    beside("upgrade", onUpgrade)
  }

  /** Records one HTTP/1 request on its connection; false when it must not run (see `Connection.admits`). */
  #admit(socket: Net.Socket, response: Http.ServerResponse): boolean {
    const connection = Connection.of(socket)
    if (connection === undefined) return true
    if (this.#ending && !connection.admits(response)) return false
    connection.serve(response, this.#ending)
    if (this.#ending) connection.endAfter(response, this.#closing ? this.#schedule : undefined, this.#grace)
    return true
  }

  #upgraded(socket: Duplex): void {
    const connection = Connection.of(socket as Net.Socket)
    const inFlight = this.#inFlight
    inFlight?.add()
    if (connection !== undefined) connection.upgraded = true
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
      if (response !== undefined && !response.headersSent) connection.endAfter(response, undefined, 0)
      connection.notice(this.#now())
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
    this.#countEach()
    stopListening.call(this.#server, () => Deferred.doneUnsafe(this.#closed, Exit.void))
    const now = this.#now()
    for (const connection of this.#all) connection.stop(this.#schedule, this.#grace, now)
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
    // Node's own end of an HTTP server (its connection checks), now that
    // nothing is left to close; the listener is already closed.
    if (this.#all.size === 0 && "closeIdleConnections" in this.#server) this.#server.close(() => {})
  }
}
