/**
 * What a graceful HTTP server must know about its connections, and the ways to
 * close them. Node keeps most of it (which HTTP/1 sockets are idle, which
 * streams a session has); we keep the rest: the latest response of each
 * HTTP/1 connection (to mark it `Connection: close`, and to count the requests
 * in flight), the HTTP/2 sessions (to send them GOAWAY) and the upgraded
 * sockets (WebSockets), which leave Node's HTTP bookkeeping.
 *
 * Everything here is driven by Node's events; nothing polls.
 *
 * @internal
 */
import { Deferred, Effect, Exit } from "effect"
import type { EventEmitter } from "node:events"
import type * as Http from "node:http"
import type * as Http2 from "node:http2"
import { constants as Http2Constants } from "node:http2"
import type * as Https from "node:https"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import type { InFlight } from "../core/inFlight.ts"

/** The servers we can drain: node:http, node:https, node:http2 (h2c and TLS). */
export type NodeServer = Http.Server | Https.Server | Http2.Http2Server | Http2.Http2SecureServer

/** A request as any of those servers emit it. */
export type Request = Http.IncomingMessage | Http2.Http2ServerRequest
/** A response as any of those servers emit it. */
export type Response = Http.ServerResponse | Http2.Http2ServerResponse

// Every server kind is a net.Server; the HTTP/1 ones (and HTTP/2 ones with
// `allowHTTP1`) also track their connections and can close the idle ones.
type Managed = Net.Server & {
  readonly closeIdleConnections?: () => void
  readonly closeAllConnections?: () => void
}

type Listener =
  | ((request: Request, response: Response) => void)
  | ((request: Request, socket: Duplex, head: Buffer) => void)

/** Answers a request itself (readiness, liveness) and returns `true`, or lets it through. */
export type Intercept = (request: Request, response: Response) => boolean

// The latest response of an HTTP/1 connection, kept on the socket itself: a
// property store per request, where a map keyed by socket would hash it on
// every request.
const latest = Symbol("effect-graceful/latestResponse")
type Socket = Net.Socket & { [latest]?: Http.ServerResponse }

// Not finished, and not destroyed: a destroyed response has emitted its
// `close`, or is about to, and must not be waited for.
const isUnfinished = (response: Http.ServerResponse): boolean => !response.writableFinished && !response.destroyed

/** The connections of one server, from its creation to its close. */
export class Connections {
  readonly #server: Managed
  readonly #controller: AbortController
  // The HTTP/1 connections that carried a request, each with its latest
  // response on it: a connection joins at its first request and leaves when
  // it closes, so the cost is per connection, not per keep-alive request.
  readonly #sockets = new Set<Socket>()
  readonly #forget: (this: Socket) => void
  readonly #sessions = new Set<Http2.ServerHttp2Session>()
  readonly #upgraded = new Set<Duplex>()
  readonly #closed = Deferred.makeUnsafe<void>()
  #inFlight: InFlight | undefined
  // HTTP/1 requests are counted from their connections (a response not yet
  // finished is one in flight) until somebody waits for them or the server
  // begins to close; from then on one by one, until their response closes. A listener
  // per request is the largest cost we would add to a hello world.
  #eachCounted = false
  #startedUncounted = 0
  // From the quit event: keep-alive ends with each response.
  #ending = false
  #closing = false
  // Node's own test of idleness (no request being read, no response being
  // written) is the one to trust; we only choose the moments to apply it.
  readonly #closeIdle = () => this.#server.closeIdleConnections?.()

  constructor(server: NodeServer, controller: AbortController) {
    this.#server = server
    this.#controller = controller
    const sockets = this.#sockets
    // One listener for every connection, called with the socket as `this`.
    this.#forget = function() {
      sockets.delete(this)
    }
    // Listened to before the server listens, so that no session escapes us.
    this.#server.on("session", (session: Http2.ServerHttp2Session) => {
      // A TLS handshake may finish after the server began to close: GOAWAY at once.
      if (this.#closing) return void session.close()
      this.#sessions.add(session)
      session.once("close", () => this.#sessions.delete(session))
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
    for (const socket of this.#sockets) if (isUnfinished(socket[latest]!)) n++
    return n
  }

  // A pipelined request behind the latest is not counted, but cannot end
  // later than the latest: Node writes the responses of a connection in order.
  #countEach(): void {
    if (this.#eachCounted) return
    this.#eachCounted = true
    for (const socket of this.#sockets) {
      const response = socket[latest]!
      if (isUnfinished(response)) {
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
   * Becomes the one listener of `request` (and `checkContinue` and `upgrade`,
   * when the app listens to them) and forwards to the app's listeners, so that
   * every request is counted before the app sees it and health probes are
   * answered without reaching the app. Call it once the app's listeners are on.
   */
  adopt(intercept: Intercept | undefined): void {
    const server = this.#server
    // Called once per request: no closure, no rest arguments, no `once`
    // wrapper, no map; a field read where a type test would do.
    const onRequest = (listeners: ReadonlyArray<Function>) => (request: Request, response: Response) => {
      if (intercept !== undefined && intercept(request, response)) return
      // HTTP/1 (also through an HTTP/2 server with `allowHTTP1`): the response
      // is a `ServerResponse` on a socket of its own.
      if (request.httpVersionMajor === 1) this.#track(request.socket, response as Http.ServerResponse)
      else this.#countOne(response)
      for (const listener of listeners) listener.call(server, request, response)
    }
    const onUpgrade = (listeners: ReadonlyArray<Function>) => (request: Request, socket: Duplex, head: Buffer) => {
      const inFlight = this.#inFlight
      inFlight?.add()
      this.#upgraded.add(socket)
      socket.once("close", () => {
        this.#upgraded.delete(socket)
        inFlight?.done()
      })
      for (const listener of listeners) listener.call(server, request, socket, head)
    }
    this.#replace("request", onRequest, true)
    this.#replace("checkContinue", onRequest, false)
    this.#replace("upgrade", onUpgrade, false)
  }

  #track(socket: Socket, response: Http.ServerResponse): void {
    if (socket[latest] === undefined) {
      this.#sockets.add(socket)
      socket.once("close", this.#forget)
    }
    socket[latest] = response
    if (!this.#eachCounted) this.#startedUncounted++
    else this.#countOne(response)
    if (this.#ending) {
      if (this.#closing) this.#closeAfter(response)
      else response.shouldKeepAlive = false
    }
  }

  #replace(event: string, dispatch: (listeners: ReadonlyArray<Function>) => Listener, always: boolean): void {
    const listeners = this.#server.listeners(event)
    // Node decides from the listener count whether to emit `checkContinue` or
    // `upgrade` at all; adding one where the app has none would change that.
    if (listeners.length === 0 && !always) return
    this.#server.removeAllListeners(event)
    this.#server.on(event, dispatch(listeners))
  }

  /**
   * From the quit event, through the drain delay: responses whose headers are
   * unsent carry `Connection: close` and close their connection when they end,
   * so that clients stop reusing connections while the listener still takes
   * new ones — fewer keep-alive connections are left to close under a client
   * about to reuse them when the listener closes. Idle connections are left
   * alone: closing them now would race their clients just the same.
   */
  endKeepAlive(): void {
    if (this.#ending) return
    this.#ending = true
    for (const socket of this.#sockets) {
      const response = socket[latest]!
      if (!response.headersSent) response.shouldKeepAlive = false
    }
  }

  /**
   * Stops intake: the listener closes (new connections are refused) and
   * Node closes the idle keep-alive sockets; responses in flight will carry
   * `Connection: close` if their headers are still unsent, and close their
   * socket when they end; HTTP/2 sessions get GOAWAY, their open streams go on.
   */
  stop(): void {
    if (this.#closing) return
    this.#ending = true
    this.#closing = true
    this.#countEach()
    this.#server.close(() => Deferred.doneUnsafe(this.#closed, Exit.void))
    for (const socket of this.#sockets) {
      const response = socket[latest]!
      if (isUnfinished(response)) this.#closeAfter(response)
    }
    for (const session of this.#sessions) session.close()
    this.#controller.abort()
  }

  // HTTP/2 streams need nothing of this: their session's GOAWAY ends the connection.
  #closeAfter(response: Http.ServerResponse): void {
    if (!response.headersSent) response.shouldKeepAlive = false
    // Headers already out said keep-alive (or the app insisted on it): the
    // socket goes idle when the response ends, and is closed right then.
    response.once("finish", this.#closeIdle)
  }

  /**
   * At the cut: destroys what is still in flight, so that it ends now. After
   * the server began to close, every HTTP/1 connection left has a request in
   * flight, and every session an open stream.
   */
  cut(): void {
    this.#server.closeAllConnections?.()
    // CANCEL tells the client its streams were cut, not completed.
    for (const session of this.#sessions) session.destroy(undefined, Http2Constants.NGHTTP2_CANCEL)
    for (const socket of this.#upgraded) socket.destroy()
  }

  /**
   * After the drain: destroys the connections that are left — with no
   * response in flight when the drain succeeded (a request never finished
   * sending, a socket whose last response is flushed), or stuck ones after a
   * timeout — and every session and upgraded socket.
   */
  destroyRest(force: boolean): void {
    this.#server.closeAllConnections?.()
    for (const socket of this.#upgraded) socket.destroy()
    // A session that got GOAWAY closes itself once its streams end, after
    // flushing them; destroying it earlier could lose the last frames.
    if (force) for (const session of this.#sessions) session.destroy(undefined, Http2Constants.NGHTTP2_CANCEL)
  }
}
