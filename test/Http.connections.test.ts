/**
 * The drain on the connections real deployments have: TLS handshakes in
 * progress, `allowHTTP1`, pipelining, upgrade listeners added late, HTTP/2's
 * two-step GOAWAY, a connection whose first request is still on the wire, a
 * keep-alive client's queued request, and `ws` WebSockets. Real servers and
 * clients on loopback; assertions on outcomes and the order of events.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as NodeHttp from "node:http"
import * as NodeHttp2 from "node:http2"
import * as NodeHttps from "node:https"
import got from "got"
import * as Undici from "undici"
import WebSocket, { WebSocketServer } from "ws"
import * as Http from "../src/Http.ts"
import { Quit } from "../src/index.ts"
import { awaitPhase, connect, fire, get, launch, portOf, row, signal, testCertificate, withQuit } from "./support/http.ts"
import { rawClient, silent } from "./support/raw.ts"

const listenOn = { port: 0, host: "127.0.0.1" } as const
const certificate = testCertificate()
const aborted = (signal: AbortSignal) =>
  Effect.callback<void>((resume) => signal.aborted ? resume(Effect.void) : signal.addEventListener("abort", () => resume(Effect.void)))

describe("Http: connections with no request yet", () => {
  for (
    const [kind, make] of [
      ["https", () => NodeHttps.createServer(certificate, (_req, res) => res.end("ok"))],
      ["http2 over TLS", () => NodeHttp2.createSecureServer(certificate, (_req, res) => res.end("ok"))],
      ["http2 over TLS with allowHTTP1", () => NodeHttp2.createSecureServer({ ...certificate, allowHTTP1: true }, (_req, res) => res.end("ok"))]
    ] as const
  ) {
    it.live(`${kind}: a TLS handshake that never finishes does not hold the shutdown; the server closes it after the grace`, () =>
      withQuit(Effect.gen(function*() {
        const server = make()
        const run = yield* launch(Http.layerNode(() => server, listenOn))
        yield* awaitPhase("running")
        const halfOpen = yield* Effect.promise(() => silent(portOf(server)))
        yield* fire
        const report = yield* Fiber.join(run)
        yield* Effect.promise(() => halfOpen.ended)
        assert.deepInclude(report, { ending: "graceful", exitCode: 0 })
        assert.deepInclude(row(report, "http"), { outcome: "done" })
      }), { closeTimeout: "1 second", shutdownTimeout: "4 seconds" }))
  }

  it.live("a connection accepted before the listener closed sends its first request after: it is served with Connection: close", () =>
    withQuit(Effect.gen(function*() {
      let closing: AbortSignal | undefined
      const server = NodeHttp.createServer((_req, res) => res.end("late but served"))
      const run = yield* launch(Http.layerNode((setup) => (closing = setup.closing, server), listenOn))
      yield* awaitPhase("running")
      const port = portOf(server)
      const client = yield* Effect.promise(() => rawClient(port))
      yield* fire
      yield* aborted(closing!)
      const refused = yield* Effect.promise(() => connect(port))
      client.send("/late")
      const [response] = yield* Effect.promise(() => client.received(1))
      const ended = yield* Effect.promise(() => client.ended)
      yield* Fiber.join(run)
      assert.strictEqual(refused, "ECONNREFUSED", "the listener was closed when the request was sent")
      assert.deepStrictEqual(response, { status: 200, connection: "close", body: "late but served" })
      assert.strictEqual(ended, "closed")
    })))
})

describe("Http: the quit event's notice on keep-alive", () => {
  it.live("a response written in the very turn the quit event fires — by the handler's own fiber — says Connection: close", () =>
    withQuit(Effect.gen(function*() {
      const server = NodeHttp.createServer()
      const Routes = Layer.mergeAll(
        HttpRouter.add("GET", "/", HttpServerResponse.text("ok")),
        // Fires the quit event and answers at once, before any other fiber runs.
        HttpRouter.add("GET", "/quit", Effect.as(Quit.fire("by the handler"), HttpServerResponse.text("ok")))
      )
      const app = HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provide(Http.layer(() => server, listenOn))
      )
      const run = yield* launch(app)
      yield* awaitPhase("running")
      const agent = new NodeHttp.Agent({ keepAlive: true })
      const before = yield* Effect.promise(() => get(portOf(server), "/", agent))
      const quitting = yield* Effect.promise(() => get(portOf(server), "/quit", agent))
      agent.destroy()
      yield* Fiber.join(run)
      assert.strictEqual(before.headers["connection"], "keep-alive")
      assert.strictEqual(quitting.headers["connection"], "close")
    })))
})

describe("Http: allowHTTP1", () => {
  it.live("an HTTP/1.1 request stuck past the drain timeout on an HTTP/2 server with allowHTTP1 is cut", () =>
    withQuit(Effect.gen(function*() {
      const started = signal()
      const server = NodeHttp2.createSecureServer({ ...certificate, allowHTTP1: true }, () => started.resolve())
      const run = yield* launch(Http.layerNode(() => server, { ...listenOn, drainTimeout: "300 millis" }))
      yield* awaitPhase("running")
      const reply = new Promise<string>((resolve) => {
        const request = NodeHttps.get({ port: portOf(server), host: "127.0.0.1", path: "/stuck", rejectUnauthorized: false }, () => resolve("answered"))
        request.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
      })
      yield* Effect.promise(() => started.promise)
      yield* fire
      const report = yield* Fiber.join(run)
      assert.strictEqual(yield* Effect.promise(() => reply), "ECONNRESET")
      assert.deepInclude(report, { ending: "graceful", exitCode: 0 })
      assert.deepInclude(row(report, "http"), { outcome: "cut", detail: "1 cut at the drain timeout" })
    })))
})

describe("Http: pipelining during the drain", () => {
  it.live("three requests pipelined during the drain delay all get their answer; only the last says Connection: close", () =>
    withQuit(Effect.gen(function*() {
      const ran: Array<string> = []
      const server = NodeHttp.createServer((req, res) => {
        ran.push(req.url!)
        setTimeout(() => res.end(`answer ${req.url}`), 50)
      })
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      const client = yield* Effect.promise(() => rawClient(portOf(server)))
      yield* fire
      client.send("/1", "/2", "/3")
      const responses = yield* Effect.promise(() => client.received(3))
      yield* Effect.promise(() => client.ended)
      yield* Fiber.join(run)
      assert.deepStrictEqual(ran, ["/1", "/2", "/3"])
      assert.deepStrictEqual(responses.map((r) => [r.status, r.body, r.connection]), [
        [200, "answer /1", "keep-alive"],
        [200, "answer /2", "keep-alive"],
        [200, "answer /3", "close"]
      ])
    }), { drainDelay: "2 seconds" }))

  it.live("a request pipelined behind a response already sent with Connection: close does not run: every handler that ran was answered", () =>
    withQuit(Effect.gen(function*() {
      const ran: Array<string> = []
      // Answers at once: the first response (with Connection: close) is on the
      // wire before Node parses the requests behind it.
      const server = NodeHttp.createServer((req, res) => {
        ran.push(req.url!)
        res.end(`answer ${req.url}`)
      })
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      const client = yield* Effect.promise(() => rawClient(portOf(server)))
      yield* fire
      client.send("/1", "/2", "/3")
      yield* Effect.promise(() => client.ended)
      yield* Fiber.join(run)
      const answered = client.responses().map((r) => r.body)
      assert.deepStrictEqual(answered, ran.map((url) => `answer ${url}`), "an answer for every handler that ran, and no more")
      assert.strictEqual(client.responses().at(-1)?.connection, "close")
    }), { drainDelay: "2 seconds" }))
})

describe("Http: upgrade listeners added after the layer is built", () => {
  it.live("an upgraded connection is counted and, past the drain timeout, cut: it does not hold the shutdown", () =>
    withQuit(Effect.gen(function*() {
      const server = NodeHttp.createServer()
      const run = yield* launch(Http.layerNode(() => server, { ...listenOn, drainTimeout: "300 millis" }))
      yield* awaitPhase("running")
      // As a WebSocket library in a layer on top would: after the layer is built.
      server.on("upgrade", (_req, socket) => socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"))
      const client = yield* Effect.promise(() => rawClient(portOf(server)))
      const switched = new Promise<void>((resolve) => client.socket.once("data", () => resolve()))
      client.socket.write("GET /chat HTTP/1.1\r\nHost: test\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
      yield* Effect.promise(() => switched)
      yield* fire
      const report = yield* Fiber.join(run)
      yield* Effect.promise(() => client.ended)
      assert.deepInclude(report, { ending: "graceful", exitCode: 0 })
      assert.deepInclude(row(report, "http"), { outcome: "cut", inFlightAtDrain: 1, detail: "1 cut at the drain timeout" })
    })))
})

describe("Http: HTTP/2's two-step GOAWAY", () => {
  it.live("the notice (last stream 2^31−1) comes at the quit event, while the listener still takes connections; the final GOAWAY when it closes", () =>
    withQuit(Effect.gen(function*() {
      const server = NodeHttp2.createServer((_req, res) => res.end("ok"))
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      const session = NodeHttp2.connect(`http://127.0.0.1:${portOf(server)}`)
      session.on("error", () => {})
      yield* Effect.promise(() => new Promise<void>((resolve) => session.once("connect", () => resolve())))
      const goaways: Array<{ readonly last: number; readonly phase: Quit.Phase }> = []
      const phaseNow = yield* Effect.map(Effect.context<Quit.Quit>(), (context) => () => Effect.runSync(Quit.phase.pipe(Effect.provideContext(context))).phase)
      const noticed = new Promise<void>((resolve) =>
        session.on("goaway", (_code, last) => {
          goaways.push({ last, phase: phaseNow() })
          resolve()
        })
      )
      yield* fire
      const port = portOf(server)
      yield* Effect.promise(() => noticed)
      const during = yield* Effect.promise(() => connect(port))
      yield* Fiber.join(run)
      assert.deepStrictEqual(goaways[0], { last: 2 ** 31 - 1, phase: "draining" }, "the notice, during the drain delay")
      assert.strictEqual(during, "connected", "the listener still takes new connections then")
    }), { drainDelay: "500 millis" }))
})

/** A keep-alive client with one connection, so that a second request queues behind the first. */
interface Client {
  readonly get: (url: string) => Promise<{ readonly status?: number; readonly connection?: string; readonly error?: string }>
  readonly close: () => void
}

const clients: ReadonlyArray<readonly [string, () => Client]> = [
  ["Node's http.Agent", () => {
    const agent = new NodeHttp.Agent({ keepAlive: true, maxSockets: 1 })
    return {
      get: (url) =>
        new Promise((resolve) => {
          const request = NodeHttp.get(url, { agent }, (response) => {
            response.resume()
            response.on("end", () => resolve({ status: response.statusCode!, connection: String(response.headers.connection) }))
          })
          request.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }))
        }),
      close: () => agent.destroy()
    }
  }],
  ["undici", () => {
    const dispatcher = new Undici.Agent({ connections: 1, pipelining: 1 })
    return {
      get: (url) =>
        Undici.request(url, { dispatcher }).then(
          async (response) => {
            await response.body.text()
            return { status: response.statusCode, connection: String(response.headers["connection"]) }
          },
          (error: NodeJS.ErrnoException & { readonly cause?: NodeJS.ErrnoException }) => ({ error: error.cause?.code ?? error.code ?? error.message })
        ),
      close: () => void dispatcher.close()
    }
  }],
  ["got (retrying twice)", () => {
    const agent = new NodeHttp.Agent({ keepAlive: true, maxSockets: 1 })
    return {
      get: (url) =>
        got(url, { agent: { http: agent }, retry: { limit: 2 } }).then(
          (response) => ({ status: response.statusCode, connection: String(response.headers.connection) }),
          (error: NodeJS.ErrnoException) => ({ error: error.code ?? error.message })
        ),
      close: () => agent.destroy()
    }
  }]
]

describe.each(clients)("Http: a keep-alive client's queued request (%s)", (_, makeClient) => {
  const queued = (headersFirst: boolean) =>
    Effect.gen(function*() {
      const reached = signal()
      const server = NodeHttp.createServer((req, res) => {
        if (req.url !== "/first") return void res.end("second served")
        if (headersFirst) {
          res.writeHead(200, { "content-type": "text/plain" })
          res.write("first…")
        }
        reached.resolve()
        setTimeout(() => res.end("done"), 200)
      })
      const run = yield* launch(Http.layerNode(() => server, listenOn))
      yield* awaitPhase("running")
      const client = makeClient()
      const url = (path: string) => `http://127.0.0.1:${portOf(server)}${path}`
      const first = client.get(url("/first"))
      yield* Effect.promise(() => reached.promise)
      const second = client.get(url("/second"))
      yield* fire
      const replies = yield* Effect.promise(() => Promise.all([first, second]))
      yield* Fiber.join(run)
      client.close()
      return replies
    })

  it.live("behind a response whose keep-alive headers went out before the quit event: served on that connection, with Connection: close", () =>
    withQuit(Effect.gen(function*() {
      const replies = yield* queued(true)
      assert.deepStrictEqual(replies, [{ status: 200, connection: "keep-alive" }, { status: 200, connection: "close" }])
    })))

  it.live("behind a response still to be written: that one says Connection: close, and the queued request is refused, never reset", () =>
    withQuit(Effect.gen(function*() {
      const replies = yield* queued(false)
      assert.deepStrictEqual(replies, [{ status: 200, connection: "close" }, { error: "ECONNREFUSED" }], "not processed, and the client can tell")
    })))
})

describe("Http: ws WebSockets", () => {
  it.live("a ws server registered with webSockets: its clients get 1001 going away when the server closes, and the drain waits for them", () =>
    withQuit(Effect.gen(function*() {
      let server: NodeHttp.Server | undefined
      const layer = Http.layerNode(({ webSockets }) => {
        server = NodeHttp.createServer()
        webSockets(new WebSocketServer({ server })).on("connection", (socket) => socket.send("hello"))
        return server
      }, listenOn)
      const run = yield* launch(layer)
      yield* awaitPhase("running")
      const client = new WebSocket(`ws://127.0.0.1:${portOf(server!)}`)
      const hello = new Promise<string>((resolve) => client.once("message", (data) => resolve(String(data))))
      const closed = new Promise<{ readonly code: number; readonly reason: string }>((resolve) =>
        client.once("close", (code, reason) => resolve({ code, reason: String(reason) }))
      )
      assert.strictEqual(yield* Effect.promise(() => hello), "hello")
      yield* fire
      const end = yield* Effect.promise(() => closed)
      const report = yield* Fiber.join(run)
      assert.deepStrictEqual(end, { code: 1001, reason: "going away" })
      assert.deepInclude(row(report, "http"), { outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0 })
    })))
})
