/**
 * `reusePort` (SO_REUSEPORT, Linux): two servers listen on one port at once —
 * the old and the new instance of a handoff — for `Http.layerNode`,
 * `Http.layer`, `Health.layer` and gRPC (whose port is then a listener of ours
 * handing connections to grpc-js). When the first one drains away, the second
 * keeps answering on the same port.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Diagnostics from "node:diagnostics_channel"
import * as NodeHttp from "node:http"
import type * as Net from "node:net"
import * as Grpc from "../src/Grpc.ts"
import { Health, Http, Quit } from "../src/index.ts"
import { DemoClient, demoProto } from "./support/grpcClient.ts"
import { get, portOf, withQuit } from "./support/http.ts"

/** Builds `layer` in a scope of its own, so that one server can be released while the other runs. */
const acquire = <A, E>(layer: Layer.Layer<A, E, Quit.Quit>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(layer, scope)
    return { context, release: Scope.close(scope, Exit.void) }
  })

const named = (name: string) => NodeHttp.createServer((_req, res) => res.end(name))

describe("reusePort", () => {
  it.live("Http.layerNode: two servers on one port; when the first drains away, the second answers on it", () =>
    withQuit(Effect.gen(function*() {
      const first = named("first")
      const a = yield* acquire(Http.layerNode(() => first, { port: 0, host: "127.0.0.1", reusePort: true, name: "first" }))
      const port = portOf(first)
      const second = named("second")
      const b = yield* acquire(Http.layerNode(() => second, { port, host: "127.0.0.1", reusePort: true, name: "second" }))
      assert.strictEqual(portOf(second), port, "the same port, both listening")
      yield* a.release
      const replies = yield* Effect.promise(() => Promise.all(Array.from({ length: 20 }, () => get(port, "/"))))
      yield* b.release
      assert.deepStrictEqual([...new Set(replies.map((reply) => reply.body))], ["second"])
    }), {}, { phase: "running" }))

  it.live("Http.layer and Health.layer take reusePort too", () =>
    withQuit(Effect.gen(function*() {
      const app = (server: NodeHttp.Server, port: number) =>
        HttpRouter.serve(HttpRouter.add("GET", "/", HttpServerResponse.text("effect")), { disableLogger: true, disableListenLog: true }).pipe(
          Layer.provide(Http.layer(() => server, { port, host: "127.0.0.1", reusePort: true }))
        )
      const first = NodeHttp.createServer()
      yield* acquire(app(first, 0))
      const second = NodeHttp.createServer()
      yield* acquire(app(second, portOf(first)))
      assert.strictEqual(portOf(second), portOf(first))
      const probes = yield* acquire(Health.layer({ port: 0, host: "127.0.0.1", reusePort: true }))
      const { port } = yield* Effect.provideContext(Effect.service(Health.Server), probes.context)
      yield* acquire(Health.layer({ port, host: "127.0.0.1", reusePort: true }))
      assert.deepInclude(yield* Effect.promise(() => get(port, "/livez")), { status: 200, body: "alive\n" })
    }), {}, { phase: "running" }))

  it.live("gRPC: two servers on one port; when the first drains away, calls keep succeeding on it", () =>
    withQuit(Effect.gen(function*() {
      const served: Array<string> = []
      const service = (name: string) =>
        Effect.map(Grpc.loadService<{ Wait: { request: { ms: number; tag: string }; response: { tag: string } } }>(demoProto, "demo.Demo"), (Demo) =>
          Grpc.service(Demo, { Wait: Grpc.unary(({ tag }) => Effect.sync(() => (served.push(name), { tag }))) }))
      const server = (name: string, port: number) =>
        Layer.unwrap(Effect.map(service(name), (svc) => Grpc.layer({ services: [svc], name, host: "127.0.0.1", port, reusePort: true })))
      const a = yield* acquire(server("first", 0))
      const { port } = yield* Effect.provideContext(Effect.service(Grpc.Server), a.context)
      const b = yield* acquire(server("second", port))
      assert.strictEqual((yield* Effect.provideContext(Effect.service(Grpc.Server), b.context)).port, port)
      const client = new DemoClient(`127.0.0.1:${port}`)
      const before = yield* Effect.promise(() => client.unary("Wait", { ms: 0, tag: "before" }).done)
      const release = yield* Effect.forkChild(a.release)
      const during = yield* Effect.promise(() =>
        Promise.all(Array.from({ length: 10 }, (_, i) => client.unary("Wait", { ms: 0, tag: `after ${i}` }).done))
      )
      yield* Fiber.join(release)
      client.close()
      yield* b.release
      assert.strictEqual(before.status.code, 0)
      assert.deepStrictEqual(during.map((outcome) => outcome.status.code), Array.from({ length: 10 }, () => 0))
      assert.include(served, "second", "the second server took over the port")
    }), {}, { phase: "running" }))

  it.live("gRPC: the server is done only when its connections are closed (our listener's own close says so)", () =>
    withQuit(Effect.gen(function*() {
      // The connections as the server accepted them, from Node's own channel.
      const accepted: Array<Net.Socket> = []
      const onSocket = (message: unknown) => accepted.push((message as { socket: Net.Socket }).socket)
      Diagnostics.subscribe("net.server.socket", onSocket)
      yield* Effect.addFinalizer(() => Effect.sync(() => Diagnostics.unsubscribe("net.server.socket", onSocket)))
      const service = Effect.map(
        Grpc.loadService<{ Wait: { request: { ms: number; tag: string }; response: { tag: string } } }>(demoProto, "demo.Demo"),
        (Demo) => Grpc.service(Demo, { Wait: Grpc.unary(({ tag }) => Effect.succeed({ tag })) })
      )
      const a = yield* acquire(Layer.unwrap(Effect.map(service, (svc) => Grpc.layer({ services: [svc], host: "127.0.0.1", port: 0, reusePort: true }))))
      const { port } = yield* Effect.provideContext(Effect.service(Grpc.Server), a.context)
      const client = new DemoClient(`127.0.0.1:${port}`)
      const outcome = yield* Effect.promise(() => client.unary("Wait", { ms: 0, tag: "one" }).done)
      yield* a.release
      const open = accepted.filter((socket) => !socket.destroyed).length
      client.close()
      assert.strictEqual(outcome.status.code, 0)
      assert.strictEqual(accepted.length, 1, "the client's one connection")
      assert.strictEqual(open, 0, "no connection still open when the server is done")
    }), {}, { phase: "running" }))
})
