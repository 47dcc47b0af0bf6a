/**
 * Readiness and liveness with real servers: on the program's HTTP server and
 * on a port of their own, while starting, during the drain delay, and during
 * the drain.
 */
import { assert, describe, it } from "@effect/vitest"
import express from "express"
import { Context, Effect, Fiber, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as NodeHttp from "node:http"
import * as Net from "node:net"
import * as Health from "../src/Health.ts"
import * as Http from "../src/Http.ts"
import { Quit } from "../src/index.ts"
import { awaitPhase, connect, fire, get, launch, portOf, row, signal, withQuit } from "./support/http.ts"

const listenOn = { port: 0, host: "127.0.0.1" } as const

/** A port nobody listens on now. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = Net.createServer().listen(0, "127.0.0.1", () => {
      const port = portOf(probe)
      probe.close(() => resolve(port))
    })
  })

const probe = (port: number, path: string) => Effect.promise(() => get(port, path))

describe("Health on the program's server", () => {
  const plain = () => {
    const server = NodeHttp.createServer((_req, res) => res.end("app"))
    return { server, layer: Http.layerNode(() => server, { ...listenOn, health: true }), ready: "/readyz", live: "/livez" }
  }
  const effect = () => {
    const server = NodeHttp.createServer()
    const layer = HttpRouter.serve(HttpRouter.add("GET", "/", HttpServerResponse.text("app")), {
      disableLogger: true,
      disableListenLog: true
    }).pipe(Layer.provide(Http.layer(() => server, { ...listenOn, health: { readinessPath: "/ready", livenessPath: "/alive" } })))
    return { server, layer, ready: "/ready", live: "/alive" }
  }

  it.live.each([["a plain handler", plain], ["an Effect app, custom paths", effect]] as const)(
    "%s: during the drain delay readiness is 503 and liveness 200 while requests are still served; then the listener closes",
    ([, make]) =>
      withQuit(
        Effect.gen(function*() {
          const { layer, live, ready, server } = make()
          const run = yield* launch(layer)
          yield* awaitPhase("running")
          const port = portOf(server)
          const before = yield* probe(port, ready)
          // A keep-alive client: the same connection before and after quit fires.
          const agent = new NodeHttp.Agent({ keepAlive: true, maxSockets: 1 })
          const ordinaryBefore = yield* Effect.promise(() => get(port, "/", agent))
          const firedAt = yield* fire
          const readiness = yield* probe(port, ready)
          const liveness = yield* probe(port, live)
          const ordinary = yield* Effect.promise(() => get(port, "/", agent))
          agent.destroy()
          // Phase `stopping` begins when the drain delay ends.
          const stillDelaying = (yield* Quit.phase).phase === "draining"
          yield* awaitPhase("stopping")
          const stoppingAt = performance.now()
          const report = yield* Fiber.join(run)
          assert.deepInclude(before, { status: 200, body: "ready\n" })
          assert.isTrue(stillDelaying, "the probes above ran inside the drain delay")
          assert.deepInclude(readiness, { status: 503, body: "not ready\n" })
          assert.strictEqual(readiness.headers["cache-control"], "no-store")
          assert.deepInclude(liveness, { status: 200, body: "alive\n" })
          assert.deepInclude(ordinary, { status: 200, body: "app" })
          assert.strictEqual(ordinaryBefore.headers.connection, "keep-alive")
          assert.strictEqual(ordinary.headers.connection, "close", "keep-alive ends from the quit event")
          assert.isAtLeast(stoppingAt - firedAt, 580, "the listener stays open through the drain delay")
          assert.strictEqual(yield* Effect.promise(() => connect(port)), "ECONNREFUSED")
          assert.strictEqual(row(report, "http").inFlightAtDrain, 0, "probes are not counted as work")
        }),
        { drainDelay: "600 millis" }
      )
  )

  it.live("readiness is 503 while the rest of the program is still starting", () =>
    withQuit(Effect.gen(function*() {
      const { layer, server } = plain()
      const gate = signal()
      const slowToStart = Layer.effectDiscard(Effect.promise(() => gate.promise))
      const run = yield* launch(Layer.mergeAll(layer, slowToStart))
      yield* Effect.promise(() => new Promise<void>((resolve) => server.listening ? resolve() : server.once("listening", resolve)))
      const starting = yield* probe(portOf(server), "/readyz")
      gate.resolve()
      yield* awaitPhase("running")
      const running = yield* probe(portOf(server), "/readyz")
      yield* fire
      yield* Fiber.join(run)
      assert.deepInclude(starting, { status: 503, body: "not ready\n" })
      assert.deepInclude(running, { status: 200, body: "ready\n" })
    })))
})

describe("Health on a port of its own", () => {
  it.live("liveness stays 200 and readiness 503 through the whole drain, after the app's listener closed; it closes when the shutdown ends", () =>
    withQuit(Effect.gen(function*() {
      const healthPort = yield* Effect.promise(freePort)
      const started = signal()
      const server = NodeHttp.createServer((_req, res) => {
        started.resolve()
        setTimeout(() => res.end("slow"), 300)
      })
      let closing: AbortSignal | undefined
      const run = yield* launch(Layer.mergeAll(
        Http.layerNode((context) => (closing = context.closing, server), listenOn),
        Health.layer({ port: healthPort, host: "127.0.0.1" })
      ))
      yield* awaitPhase("running")
      const ready = yield* probe(healthPort, "/readyz")
      const appPort = portOf(server)
      const slow = get(appPort, "/slow")
      yield* Effect.promise(() => started.promise)
      yield* fire
      // The app's listener has closed once its closing signal aborts.
      yield* Effect.callback<void>((resume) => {
        if (closing?.aborted === true) return resume(Effect.void)
        closing?.addEventListener("abort", () => resume(Effect.void), { once: true })
      })
      const appRefused = yield* Effect.promise(() => connect(appPort))
      const liveness = yield* probe(healthPort, "/livez")
      const readiness = yield* probe(healthPort, "/readyz")
      const reply = yield* Effect.promise(() => slow)
      yield* Fiber.join(run)
      assert.deepInclude(ready, { status: 200, body: "ready\n" })
      assert.strictEqual(appRefused, "ECONNREFUSED", "the app stopped listening…")
      assert.isBelow(liveness.at, reply.at, "…and the probes ran while its request was in flight")
      assert.deepInclude(liveness, { status: 200, body: "alive\n" })
      assert.deepInclude(readiness, { status: 503, body: "not ready\n" })
      let closed = ""
      for (let attempt = 0; attempt < 40 && closed !== "ECONNREFUSED"; attempt++) {
        closed = yield* Effect.promise(() => connect(healthPort))
        if (closed !== "ECONNREFUSED") yield* Effect.sleep("25 millis")
      }
      assert.strictEqual(closed, "ECONNREFUSED", "closed once the shutdown ended")
    })))

  it.live("answers GET and HEAD on its paths only: other paths 404, other methods 405; the body says nothing more", () =>
    withQuit(Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* Layer.build(Health.layer({ port, host: "127.0.0.1", readinessPath: "/r", livenessPath: "/l" }))
      const head = yield* Effect.promise(() => request(port, "HEAD", "/r?verbose=1"))
      const post = yield* Effect.promise(() => request(port, "POST", "/l"))
      const other = yield* probe(port, "/readyz")
      assert.deepInclude(yield* probe(port, "/r"), { status: 200, body: "ready\n" })
      assert.deepInclude(head, { status: 200, body: "" })
      assert.strictEqual(head.length, "6")
      assert.deepInclude(post, { status: 405, allow: "GET, HEAD" })
      assert.strictEqual(other.status, 404)
    }), {}, { phase: "running" }).pipe(Effect.scoped))

  it.live("a port in use fails the layer with Http.BindError", () =>
    withQuit(Effect.gen(function*() {
      const taken = yield* Effect.acquireRelease(
        Effect.promise(() => new Promise<Net.Server>((resolve) => { const s = Net.createServer().listen(0, "127.0.0.1", () => resolve(s)) })),
        (s) => Effect.sync(() => s.close())
      )
      const error = yield* Layer.build(Health.layer({ port: portOf(taken), host: "127.0.0.1" })).pipe(Effect.flip)
      assert.instanceOf(error, Http.BindError)
      assert.strictEqual(error.code, "EADDRINUSE")
    })).pipe(Effect.scoped))

  it.live("on port 0 it provides Health.Server with the port the system picked", () =>
    withQuit(Effect.gen(function*() {
      const bound = yield* Layer.build(Health.layer({ port: 0, host: "127.0.0.1" }))
      const server = Context.get(bound, Health.Server)
      assert.isAbove(server.port, 0)
      assert.strictEqual(server.host, "127.0.0.1")
      assert.deepInclude(yield* probe(server.port, "/livez"), { status: 200, body: "alive\n" })
    })).pipe(Effect.scoped))
})

describe("Health.handler and Health.isReady", () => {
  it.live("the probes mount in any Node framework, and follow the phase", () =>
    withQuit(Effect.gen(function*() {
      const probes = yield* Health.handler()
      const app = express().use((req, res, next) => probes(req, res) || next()).get("/", (_req, res) => void res.send("app"))
      const server = NodeHttp.createServer(app)
      yield* Effect.promise(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)))
      const port = portOf(server)
      const starting = yield* probe(port, "/readyz")
      const readyBefore = yield* Health.isReady
      yield* Quit.markRunning
      const running = yield* probe(port, "/readyz")
      const readyAfter = yield* Health.isReady
      yield* Quit.fire("test")
      const draining = yield* probe(port, "/readyz")
      const app_ = yield* probe(port, "/")
      server.close()
      assert.deepStrictEqual([starting.status, running.status, draining.status], [503, 200, 503])
      assert.deepStrictEqual([readyBefore, readyAfter, yield* Health.isReady], [false, true, false])
      assert.strictEqual(app_.body, "app")
    })))
})

const request = (port: number, method: string, path: string) =>
  new Promise<{ status: number | undefined; body: string; allow: string | undefined; length: string | undefined }>((resolve, reject) => {
    const req = NodeHttp.request({ port, host: "127.0.0.1", method, path, agent: false }, (res) => {
      let body = ""
      res.on("data", (chunk) => body += chunk)
      res.on("end", () =>
        resolve({
          status: res.statusCode,
          body,
          allow: res.headers.allow,
          length: res.headers["content-length"]
        }))
    })
    req.on("error", reject)
    req.end()
  })
