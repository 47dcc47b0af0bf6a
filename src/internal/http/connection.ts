/**
 * One accepted connection of a graceful HTTP server, from TCP accept to close:
 * its state (as Go's `ConnState`) and how it ends during a shutdown.
 *
 * @internal
 */
import type * as Http from "node:http"
import type * as Http2 from "node:http2"
import type * as Net from "node:net"

const key = Symbol("effect-graceful/connection")
type Keyed = Net.Socket & { [key]?: Connection }

// RFC 9113 §6.8: the shutdown notice names the largest stream id there is.
const NOTICE_LAST_STREAM = 2 ** 31 - 1

const isUnfinished = (response: Http.ServerResponse): boolean => !response.writableFinished && !response.destroyed

// The response a socket is writing: Node's own bookkeeping (`closeIdleConnections`
// reads it too), set when a response takes the socket and cleared when it
// finishes. Read rather than kept, so that an idle connection holds no response.
type Writing = Net.Socket & { readonly _httpMessage?: Http.ServerResponse | null }

/** Runs `f` after `millis` on the quit event's clock; the returned function cancels it. @internal */
export type Schedule = (millis: number, f: () => void) => () => void

/** What every connection of one server shares. @internal */
export interface Shared {
  readonly all: Set<Connection>
  readonly schedule: Schedule
  /** Milliseconds on the quit event's clock (`TestClock` in tests): only differences are read. */
  readonly millis: () => number
  /**
   * How long a connection that carries nothing may still send a request once
   * the listener has closed: a request already on the wire is served.
   */
  readonly grace: number
}

/** The HTTP/2 shutdown notice: none yet, sent (and when), or acknowledged by the client's PING reply. */
type Notice =
  | { readonly _tag: "None" }
  | { readonly _tag: "Sent"; readonly at: number; onAcknowledged: (() => void) | undefined }
  | { readonly _tag: "Acknowledged" }

/**
 * What a connection carries — one state, as Go's `ConnState`:
 *
 * - `New`: accepted, no request yet (a TLS handshake, a first request on the wire);
 * - `Http1`: it has served requests; busy while Node writes a response on it
 *   (`current`), else idle since `idleSince`, when `bytesRead` had been read;
 * - `Http2`: an HTTP/2 session, its open streams and its shutdown notice;
 * - `Upgraded`: taken over by another protocol (a WebSocket): busy until it closes.
 *
 * @internal
 */
export type State =
  | { readonly _tag: "New" }
  | {
    readonly _tag: "Http1"
    idleSince: number
    bytesRead: number
    /**
     * The latest response, from the quit event on (before, nobody needs it):
     * Node writes a connection's responses in order, so pipelined requests are
     * decided on it; and whether its `Connection: close` is ours (and may move).
     */
    latest: Http.ServerResponse | undefined
    ours: boolean
  }
  | { readonly _tag: "Http2"; readonly session: Http2.ServerHttp2Session; streams: number; notice: Notice }
  | { readonly _tag: "Upgraded" }

/** @internal */
export class Connection {
  /** The socket TCP accepted; destroying it ends whatever runs on it (TLS included). */
  readonly raw: Net.Socket
  /** The socket HTTP reads: `raw`, or the TLS socket over it. */
  #http: Net.Socket
  readonly #shared: Shared
  state: State = { _tag: "New" }
  /** Cancels the grace timer, while one runs. */
  #cancelGrace: (() => void) | undefined

  constructor(raw: Net.Socket, shared: Shared) {
    this.raw = raw
    this.#http = raw
    this.#shared = shared
    ;(raw as Keyed)[key] = this
    shared.all.add(this)
    raw.on("close", Connection.#onClose)
  }

  // One listener for every connection, called with the socket as `this`.
  static readonly #onClose = function(this: Keyed) {
    const connection = this[key]
    if (connection === undefined) return
    connection.#shared.all.delete(connection)
    connection.#stopGrace()
  }

  // One listener for every response it stamps, called with the response as
  // `this`, after Node's own (which hands the socket to the next response).
  static readonly #onFinish = function(this: Http.ServerResponse) {
    const connection = Connection.of(this.req.socket)
    if (connection !== undefined && connection.state._tag === "Http1" && connection.current === undefined) {
      connection.#idle(connection.state)
    }
  }

  /** The connection a socket belongs to: the accepted one, or the TLS socket over it. */
  static of(socket: Net.Socket): Connection | undefined {
    return (socket as Keyed)[key]
  }

  /** The HTTP/1 response being written on it, if any (for pipelined ones: the first). */
  get current(): Http.ServerResponse | undefined {
    const writing = (this.#http as Writing)._httpMessage
    return writing === null || writing === undefined || !isUnfinished(writing) ? undefined : writing
  }

  /** The TLS handshake completed: requests will arrive on `tls`. */
  secured(tls: Net.Socket): void {
    this.#http = tls
    ;(tls as Keyed)[key] = this
  }

  #idle(state: Extract<State, { _tag: "Http1" }>): void {
    state.idleSince = this.#shared.millis()
    state.bytesRead = this.raw.bytesRead
  }

  /**
   * An HTTP/1 request arrived. `stamp`: note when its response ends, so that
   * the connection's grace can be counted from then (see {@link stop}).
   */
  serve(response: Http.ServerResponse, stamp: boolean, ending: boolean): Extract<State, { _tag: "Http1" }> {
    this.#stopGrace()
    let state = this.state
    if (state._tag !== "Http1") {
      state = { _tag: "Http1", idleSince: -Infinity, bytesRead: 0, latest: undefined, ours: false }
      this.state = state
    }
    if (stamp) this.watch(response)
    if (ending) {
      state.latest = response
      state.ours = false
    }
    return state
  }

  /** Notes when `response` ends, if it leaves the connection idle. */
  watch(response: Http.ServerResponse): void {
    response.on("finish", Connection.#onFinish)
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
    const state = this.state
    const previous = state._tag === "Http1" ? state.latest ?? this.current : this.current
    // Node gives a socket to the first response waiting for it before the
    // request is emitted: that may be this very one.
    if (previous === undefined || previous === response || !isUnfinished(previous)) return true
    if (!previous.headersSent && state._tag === "Http1" && state.ours) {
      previous.shouldKeepAlive = true
      state.ours = false
    }
    return previous.shouldKeepAlive
  }

  /**
   * Makes `response` the last of this connection: `Connection: close` if its
   * headers are unsent (Node ends the connection after it). If they already
   * said keep-alive, the client may send its next request the moment it ends:
   * once the listener is closed (`closing`), the connection then waits the
   * grace for it (see {@link stop}).
   */
  endAfter(response: Http.ServerResponse, closing: boolean): void {
    if (!response.headersSent) {
      if (response.shouldKeepAlive) {
        response.shouldKeepAlive = false
        const state = this.state
        if (state._tag === "Http1") state.ours = true
      }
      return
    }
    if (!closing || !response.shouldKeepAlive) return
    response.once("finish", () => {
      const state = this.state
      if (state._tag === "Http1" && (state.latest === response || state.latest === undefined) && this.current === undefined) {
        this.#idle(state)
        this.#awaitRequest(this.#shared.grace)
      }
    })
  }

  /**
   * Waits `millis` for a request, then closes: a connection that carries none
   * never holds the shutdown longer, and one already on the wire is served.
   */
  #awaitRequest(millis: number): void {
    this.#stopGrace()
    this.#cancelGrace = this.#shared.schedule(millis, () => {
      this.#cancelGrace = undefined
      if (!this.#busy()) this.raw.destroy()
    })
  }

  #stopGrace(): void {
    this.#cancelGrace?.()
    this.#cancelGrace = undefined
  }

  #busy(): boolean {
    const state = this.state
    switch (state._tag) {
      case "New":
        return false
      case "Http1":
        return this.current !== undefined || (state.latest !== undefined && isUnfinished(state.latest))
      case "Http2":
      case "Upgraded":
        return true
    }
  }

  /** An HTTP/2 session started on it: it is no longer waiting for a first request. */
  started(session: Http2.ServerHttp2Session): void {
    this.#stopGrace()
    this.state = { _tag: "Http2", session, streams: 0, notice: { _tag: "None" } }
  }

  /** An HTTP/2 stream opened on its session, counted until it closes. */
  opened(stream: Http2.ServerHttp2Stream): void {
    const state = this.state
    if (state._tag !== "Http2") return
    state.streams++
    stream.once("close", () => state.streams--)
  }

  /** Taken over by another protocol: it carries it until it closes. */
  upgraded(): void {
    this.#stopGrace()
    this.state = { _tag: "Upgraded" }
  }

  /**
   * The shutdown notice, and a PING: its acknowledgement is the round trip
   * after which the final GOAWAY may go. (Node's own client never acknowledges
   * it: it stops its session on the notice; then the grace is the bound.)
   */
  notice(): void {
    const state = this.state
    if (state._tag !== "Http2" || state.notice._tag !== "None") return
    const session = state.session
    if (session.closed || session.destroyed) return
    const sent: Notice = { _tag: "Sent", at: this.#shared.millis(), onAcknowledged: undefined }
    state.notice = sent
    session.goaway(0, NOTICE_LAST_STREAM)
    const acknowledged = () => {
      state.notice = { _tag: "Acknowledged" }
      if (sent._tag === "Sent") sent.onAcknowledged?.()
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
  #goaway(state: Extract<State, { _tag: "Http2" }>): void {
    this.notice()
    const session = state.session
    const close = () => {
      if (!session.closed && !session.destroyed) session.close()
    }
    const notice = state.notice
    const { grace, millis, schedule } = this.#shared
    if (notice._tag !== "Sent" || millis() - notice.at >= grace || state.streams === 0) return close()
    const cancel = schedule(grace, close)
    notice.onAcknowledged = () => {
      cancel()
      close()
    }
  }

  /**
   * The listener closed: ends this connection the moment it carries nothing.
   * One rule for a connection that carries nothing now: it may still receive
   * a request for the grace — counted from its last response's end for a
   * keep-alive one (whether that came before the listener closed or after),
   * from now for a new one or one whose next request is half received.
   */
  stop(): void {
    const state = this.state
    switch (state._tag) {
      case "Upgraded":
        return
      case "Http2":
        return this.#goaway(state)
      case "New":
        return this.#awaitRequest(this.#shared.grace)
      case "Http1": {
        const latest = state.latest !== undefined && isUnfinished(state.latest) ? state.latest : this.current
        if (latest !== undefined) return this.endAfter(latest, true)
        // A next request half received: it has the grace to arrive whole.
        if (this.raw.bytesRead > state.bytesRead) return this.#awaitRequest(this.#shared.grace)
        const rest = Math.min(this.#shared.grace, state.idleSince + this.#shared.grace - this.#shared.millis())
        if (rest > 0) return this.#awaitRequest(rest)
        // Idle keep-alive: as Node's own `closeIdleConnections` does.
        return void this.raw.destroy()
      }
    }
  }

  /** At the cut: destroys it if something is still in flight on it. */
  cut(cancel: number): void {
    const state = this.state
    if (state._tag === "Http2") return void state.session.destroy(undefined, cancel)
    if (this.#busy()) this.raw.destroy()
  }

  /** After the drain: destroys it if it carries nothing and waits for nothing; with `force`, whatever it carries. */
  destroyIfIdle(force: boolean, cancel: number): void {
    const state = this.state
    if (force) {
      if (state._tag === "Http2" && !state.session.destroyed) state.session.destroy(undefined, cancel)
      return void this.raw.destroy()
    }
    if (state._tag === "Http2" || this.#cancelGrace !== undefined) return
    this.raw.destroy()
  }
}
