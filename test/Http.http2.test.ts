/**
 * HTTP/2 drains with the node:http2 client, cleartext (h2c) and over TLS with
 * a certificate made at test time: sessions get GOAWAY, the stream in flight
 * completes, idle sessions close at once, and the server closes right after.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import type { IncomingHttpHeaders } from "node:http"
import * as NodeHttp2 from "node:http2"
import * as NodeHttps from "node:https"
import type * as Net from "node:net"
import * as Http from "../src/Http.ts"
import type { Options, Quit } from "../src/index.ts"
import {
  awaitPhase,
  closedAt,
  connect,
  fire,
  launch,
  portOf,
  request2,
  row,
  signal,
  testCertificate,
  withQuit
} from "./support/http.ts"

const SLOW_MS = 300
const IDLE_SESSIONS = 50
const listenOn = { port: 0, host: "127.0.0.1", backlog: 512 } as const
const certificate = testCertificate()

type Make = (handler?: (req: NodeHttp2.Http2ServerRequest, res: NodeHttp2.Http2ServerResponse) => void) =>
  NodeHttp2.Http2Server | NodeHttp2.Http2SecureServer

const transports: ReadonlyArray<readonly [string, Make, string]> = [
  ["h2c", (handler) => handler === undefined ? NodeHttp2.createServer() : NodeHttp2.createServer(handler), "http"],
  [
    "TLS",
    (handler) => handler === undefined ? NodeHttp2.createSecureServer(certificate) : NodeHttp2.createSecureServer(certificate, handler),
    "https"
  ]
]

interface App {
  readonly layer: Layer.Layer<never, Http.BindError | Options.InvalidOption, Quit.Quit>
  readonly server: Net.Server
  readonly started: Promise<void>
}

const plain = (make: Make): App => {
  const started = signal()
  const server = make((req, res) => {
    if (req.url !== "/slow") return void res.end("idle")
    started.resolve()
    setTimeout(() => res.end("slow"), SLOW_MS)
  })
  return { layer: Http.layerNode(() => server, listenOn), server, started: started.promise }
}

const effect = (make: Make): App => {
  const started = signal()
  const server = make()
  const Routes = Layer.mergeAll(
    HttpRouter.add("GET", "/idle", HttpServerResponse.text("idle")),
    HttpRouter.add("GET", "/slow", Effect.sync(started.resolve).pipe(Effect.andThen(Effect.sleep(SLOW_MS)), Effect.as(HttpServerResponse.text("slow"))))
  )
  const layer = HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(Http.layer(() => server, listenOn))
  )
  return { layer, server, started: started.promise }
}

interface Session {
  readonly session: NodeHttp2.ClientHttp2Session
  readonly goaway: Promise<number>
  readonly closed: Promise<number>
}

const open = (scheme: string, port: number): Session => {
  const session = NodeHttp2.connect(`${scheme}://127.0.0.1:${port}`, { rejectUnauthorized: false })
  session.on("error", () => {})
  return {
    session,
    goaway: new Promise((resolve) => session.once("goaway", () => resolve(performance.now()))),
    closed: new Promise((resolve) => session.once("close", () => resolve(performance.now())))
  }
}

describe.each(transports)("Http over HTTP/2 (%s)", (_, make, scheme) => {
  it.live.each([["a plain handler", plain], ["an Effect HttpRouter app", effect]] as const)(
    `%s: a ${SLOW_MS} ms stream in flight and ${IDLE_SESSIONS} idle sessions: every session gets GOAWAY, the idle ones close before the stream ends, the stream completes, new connections are refused, the server closes after it`,
    ([, makeApp]) =>
      withQuit(Effect.gen(function*() {
        const app = makeApp(make)
        const run = yield* launch(app.layer)
        yield* awaitPhase("running")
        const port = portOf(app.server)
        const idle = Array.from({ length: IDLE_SESSIONS }, () => open(scheme, port))
        yield* Effect.promise(() => Promise.all(idle.map(({ session }) => request2(session, "/idle"))))
        const busy = open(scheme, port)
        const slow = request2(busy.session, "/slow")
        yield* Effect.promise(() => app.started)
        const closed = closedAt(app.server)
        yield* fire
        const idleClosedAt = Math.max(...yield* Effect.promise(() => Promise.all(idle.map((s) => s.closed))))
        const refused = yield* Effect.promise(() => connect(port))
        const reply = yield* Effect.promise(() => slow)
        const busyGoaway = yield* Effect.promise(() => busy.goaway)
        const serverClosedAt = yield* Effect.promise(() => closed)
        const report = yield* Fiber.join(run)
        busy.session.close()

        assert.isBelow(busyGoaway, reply.at, "the busy session got GOAWAY while its stream was in flight")
        yield* Effect.promise(() => Promise.all(idle.map((s) => s.goaway)))
        assert.isBelow(idleClosedAt, reply.at, "idle sessions close at once, not when the stream in flight ends")
        assert.strictEqual(refused, "ECONNREFUSED")
        assert.isUndefined(reply.error)
        assert.deepInclude(reply, { status: 200, body: "slow", rstCode: 0 })
        // Client and server share this process: the server's `close` may be seen
        // a few ms before the client has read the last bytes.
        assert.isAtLeast(serverClosedAt - reply.at, -50, "the server closes after the stream, not before")
        assert.deepInclude(row(report, "http"), { outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0 })
      }))
  )
})

describe("Http over HTTP/2: the drain timeout", () => {
  it.live("a plain handler's stream still open at the drain timeout is cut with its session; the report counts it", () =>
    withQuit(Effect.gen(function*() {
      const started = signal()
      const server = NodeHttp2.createServer((_req, res) => {
        started.resolve()
        res.write("partial")
      })
      const run = yield* launch(Http.layerNode(() => server, { ...listenOn, drainTimeout: "300 millis" }))
      yield* awaitPhase("running")
      const client = open("http", portOf(server))
      const reply = request2(client.session, "/never-ends")
      yield* Effect.promise(() => started.promise)
      const firedAt = yield* fire
      const { at, rstCode } = yield* Effect.promise(() => reply)
      const report = yield* Fiber.join(run)
      assert.strictEqual(rstCode, NodeHttp2.constants.NGHTTP2_CANCEL, "the stream was cut, not completed")
      assert.isAtLeast(at - firedAt, 280, "not before the drain timeout (the stream itself never ends)")
      assert.deepInclude(row(report, "http"), { outcome: "cut", detail: "1 cut at the drain timeout", inFlightAtEnd: 0 })
    })))
})

describe("Http over TLS with allowHTTP1", () => {
  it.live("HTTP/1.1 clients of an HTTP/2 server drain like HTTP/1.1: connection: close, idle keep-alive sockets closed before the request in flight ends", () =>
    withQuit(Effect.gen(function*() {
      const started = signal()
      const server = NodeHttp2.createSecureServer({ ...certificate, allowHTTP1: true }, (req, res) => {
        if (req.url !== "/slow") return void res.end("idle")
        started.resolve()
        setTimeout(() => res.end("slow"), SLOW_MS)
      })
      // A connection keeps a grace for a next request after its response (at
      // most the close timeout): the idle socket here is idle for longer.
      const run = yield* launch(Http.layerNode(() => server, { ...listenOn, closeTimeout: "100 millis" }))
      yield* awaitPhase("running")
      const port = portOf(server)
      const agent = new NodeHttps.Agent({ keepAlive: true, rejectUnauthorized: false })
      const idleAgent = new NodeHttps.Agent({ keepAlive: true, rejectUnauthorized: false, maxSockets: 1 })
      const idleReply = yield* Effect.promise(() => httpsGet(port, "/idle", idleAgent))
      const idleSocketClosed = new Promise<number>((resolve) => idleReply.socket.once("close", () => resolve(performance.now())))
      yield* Effect.sleep("200 millis")
      const slow = httpsGet(port, "/slow", agent)
      yield* Effect.promise(() => started.promise)
      const closed = closedAt(server)
      yield* fire
      const idleClosedAt = yield* Effect.promise(() => idleSocketClosed)
      const reply = yield* Effect.promise(() => slow)
      const serverClosedAt = yield* Effect.promise(() => closed)
      yield* Fiber.join(run)
      assert.strictEqual(idleReply.headers.connection, "keep-alive")
      assert.isBelow(idleClosedAt, reply.at, "the idle socket closed at once, not when the request in flight ended")
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(reply.headers.connection, "close")
      assert.isAtLeast(serverClosedAt - reply.at, -50, "the server closes after the last response, not before")
    })))
})

const httpsGet = (port: number, path: string, agent: NodeHttps.Agent) =>
  new Promise<{ status: number | undefined; headers: IncomingHttpHeaders; at: number; socket: Net.Socket }>(
    (resolve, reject) => {
      NodeHttps.get({ port, host: "127.0.0.1", path, agent }, (response) => {
        const socket = response.socket
        response.resume()
        response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, at: performance.now(), socket }))
      }).on("error", reject)
    }
  )
