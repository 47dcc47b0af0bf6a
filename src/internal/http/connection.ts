/**
 * One accepted connection of a graceful HTTP server, from TCP accept to close:
 * what it carries (nothing yet, HTTP/1 responses, an HTTP/2 session, an
 * upgraded protocol) and how it ends during a shutdown.
 *
 * @internal
 */
import type * as Http from "node:http"
import type * as Http2 from "node:http2"
import type * as Net from "node:net"
import type { Schedule } from "./connections.ts"

const key = Symbol("effect-graceful/connection")
type Keyed = Net.Socket & { [key]?: Connection }

// RFC 9113 §6.8: the shutdown notice names the largest stream id there is.
const NOTICE_LAST_STREAM = 2 ** 31 - 1

const isUnfinished = (response: Http.ServerResponse): boolean => !response.writableFinished && !response.destroyed

// The response a socket is writing: Node's own bookkeeping (`closeIdleConnections`
// reads it too), set when a response takes the socket and cleared when it
// finishes. Read rather than kept, so that an idle connection holds no response.
type Writing = Net.Socket & { readonly _httpMessage?: Http.ServerResponse | null }

/** @internal */
export class Connection {
  /** The socket TCP accepted; destroying it ends whatever runs on it (TLS included). */
  readonly raw: Net.Socket
  /** The socket HTTP reads: `raw`, or the TLS socket over it. */
  #http: Net.Socket
  readonly #all: Set<Connection>
  /** Whether a request ever arrived on it. */
  served = false
  /**
   * The latest HTTP/1 response, from the quit event on (before, nobody needs
   * it): Node writes a connection's responses in order, so pipelined requests
   * are decided on it.
   */
  latest: Http.ServerResponse | undefined
  session: Http2.ServerHttp2Session | undefined
  /** HTTP/2 streams open on its session. */
  streams = 0
  upgraded = false
  // Whether `latest` says `Connection: close` because we asked it to (and may move it).
  #ours = false
  #cancelGrace: (() => void) | undefined
  #notice: "none" | "sent" | "acknowledged" = "none"
  #noticedAt = 0
  #onAcknowledged: (() => void) | undefined

  constructor(raw: Net.Socket, all: Set<Connection>) {
    this.raw = raw
    this.#http = raw
    this.#all = all
    ;(raw as Keyed)[key] = this
    all.add(this)
    raw.on("close", Connection.#onClose)
  }

  // One listener for every connection, called with the socket as `this`.
  static readonly #onClose = function(this: Keyed) {
    const connection = this[key]!
    connection.#all.delete(connection)
    connection.#cancelGrace?.()
  }

  /** The response being written on it, if any (for a pipelined one: the first). */
  get current(): Http.ServerResponse | undefined {
    const writing = (this.#http as Writing)._httpMessage
    return writing === null || writing === undefined || !isUnfinished(writing) ? undefined : writing
  }

  /** The connection a socket belongs to: the accepted one, or the TLS socket over it. */
  static of(socket: Net.Socket): Connection | undefined {
    return (socket as Keyed)[key]
  }

  /** The TLS handshake completed: requests will arrive on `tls`. */
  secured(tls: Net.Socket): void {
    this.#http = tls
    ;(tls as Keyed)[key] = this
  }

  /** A request arrived; from the quit event on, its response is kept as the latest. */
  serve(response: Http.ServerResponse, ending: boolean): void {
    this.#stopGrace()
    this.served = true
    if (!ending) return
    this.latest = response
    this.#ours = false
  }

  /**
   * Whether a new request on this connection may run, once the quit event has
   * fired. A request pipelined behind a response that will close the
   * connection would have its handler run and its answer thrown away: it does
   * not run, and the client sees the connection close before its answer (as
   * RFC 9112 §9.3.2 says it must be ready for). A close we asked for moves to
   * the new last response instead, so that every request queued is answered.
   */
  admits(response: Http.ServerResponse): boolean {
    const previous = this.latest ?? this.current
    // Node gives a socket to the first response waiting for it before the
    // request is emitted: that may be this very one.
    if (previous === undefined || previous === response || !isUnfinished(previous)) return true
    if (!previous.headersSent && this.#ours) {
      previous.shouldKeepAlive = true
      this.#ours = false
    }
    return previous.shouldKeepAlive
  }

  /**
   * Makes `response` the last of this connection: `Connection: close` if its
   * headers are unsent (Node ends the connection after it); if they already
   * said keep-alive, the client may send its next request the moment it ends,
   * so — once the listener is closed (`schedule`) — the connection waits for
   * it for the grace and then closes.
   */
  endAfter(response: Http.ServerResponse, schedule: Schedule | undefined, grace: number): void {
    if (!response.headersSent) {
      if (response.shouldKeepAlive) {
        response.shouldKeepAlive = false
        this.#ours = true
      }
      return
    }
    if (schedule === undefined || !response.shouldKeepAlive) return
    response.once("finish", () => {
      if (this.latest === response || this.latest === undefined) this.awaitRequest(schedule, grace)
    })
  }

  /**
   * Waits `grace` for a request, then closes: a connection that carries none
   * (a TLS handshake in progress, a client that has not spoken yet) never
   * holds the shutdown longer, and one already on the wire is served.
   */
  awaitRequest(schedule: Schedule, grace: number): void {
    this.#stopGrace()
    this.#cancelGrace = schedule(grace, () => {
      this.#cancelGrace = undefined
      if (this.session === undefined && !this.upgraded && !this.#busy()) this.raw.destroy()
    })
  }

  #stopGrace(): void {
    this.#cancelGrace?.()
    this.#cancelGrace = undefined
  }

  #busy(): boolean {
    return this.current !== undefined || (this.latest !== undefined && isUnfinished(this.latest))
  }

  /** An HTTP/2 session started on it: it is no longer waiting for a first request. */
  started(session: Http2.ServerHttp2Session): void {
    this.#stopGrace()
    this.session = session
  }

  /** An HTTP/2 stream opened on its session, counted until it closes. */
  opened(stream: Http2.ServerHttp2Stream): void {
    this.streams++
    stream.once("close", () => this.streams--)
  }

  /**
   * The shutdown notice, and a PING: its acknowledgement is the round trip
   * after which the final GOAWAY may go. (Node's own client never acknowledges
   * it: it stops its session on the notice; then the grace is the bound.)
   */
  notice(now: number): void {
    const session = this.session
    if (session === undefined || this.#notice !== "none" || session.closed || session.destroyed) return
    this.#notice = "sent"
    this.#noticedAt = now
    session.goaway(0, NOTICE_LAST_STREAM)
    const acknowledged = () => {
      this.#notice = "acknowledged"
      this.#onAcknowledged?.()
    }
    if (!session.ping(acknowledged)) acknowledged()
  }

  /**
   * The final GOAWAY, with the last stream id processed: one round trip after
   * the notice — at once if the notice is acknowledged or older than the grace
   * (a drain delay has passed since), or if no stream is open (a stream the
   * client opens meanwhile is refused unprocessed, which it may retry), else
   * on its acknowledgement, at most the grace later.
   */
  goaway(schedule: Schedule, grace: number, now: number): void {
    const session = this.session
    if (session === undefined) return
    this.notice(now)
    const close = () => {
      this.#onAcknowledged = undefined
      if (!session.closed && !session.destroyed) session.close()
    }
    if (this.#notice === "acknowledged" || now - this.#noticedAt >= grace || this.streams === 0) return close()
    const cancel = schedule(grace, close)
    this.#onAcknowledged = () => {
      cancel()
      close()
    }
  }

  /** The listener closed: ends this connection the moment it carries nothing. */
  stop(schedule: Schedule, grace: number, now: number): void {
    if (this.upgraded) return
    if (this.session !== undefined) return this.goaway(schedule, grace, now)
    if (!this.served) return this.awaitRequest(schedule, grace)
    const latest = this.latest !== undefined && isUnfinished(this.latest) ? this.latest : this.current
    // Idle keep-alive: as Node's own `closeIdleConnections` does.
    if (latest === undefined) return void this.raw.destroy()
    this.endAfter(latest, schedule, grace)
  }

  /** At the cut: destroys it if something is still in flight on it. */
  cut(cancel: number): void {
    if (this.session !== undefined) return void this.session.destroy(undefined, cancel)
    if (this.upgraded || this.#busy()) this.raw.destroy()
  }

  /** After the drain: destroys it if it carries nothing and waits for nothing; with `force`, whatever it carries. */
  destroyIfIdle(force: boolean, cancel: number): void {
    if (force) {
      if (this.session !== undefined && !this.session.destroyed) this.session.destroy(undefined, cancel)
      return void this.raw.destroy()
    }
    if (this.session !== undefined || this.#cancelGrace !== undefined) return
    this.raw.destroy()
  }
}
