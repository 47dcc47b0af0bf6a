/**
 * `/metrics` in the Prometheus text format, opt-in on the health server and
 * on a program's server (`health: { metrics: true }`), through Effect's
 * `PrometheusMetrics`: the library's series with the program's own, read
 * while a request is in flight and after the quit event.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric } from "effect"
import * as NodeHttp from "node:http"
import * as Health from "../src/Health.ts"
import * as Http from "../src/Http.ts"
import { awaitPhase, fire, get, launch, portOf, signal, withQuit } from "./support/http.ts"

const listenOn = { port: 0, host: "127.0.0.1" } as const

/** The lines of a scrape that `pattern` matches. */
const series = (body: string, pattern: RegExp) => body.split("\n").filter((line) => pattern.test(line))

describe("/metrics", () => {
  it.live("on the health server: units in flight per group, the phase, the program's own series; text format 0.0.4", () =>
    withQuit(Effect.gen(function*() {
      const started = signal()
      const release = signal()
      const server = NodeHttp.createServer((_req, res) => {
        started.resolve()
        void release.promise.then(() => res.end("done"))
      })
      const orders = Metric.counter("orders_total", { description: "Orders taken" })
      const probes = yield* Effect.map(
        Layer.build(Health.layer({ ...listenOn, metrics: true })),
        (context) => context.mapUnsafe.get(Health.Server.key) as Health.Server["Service"]
      )
      const run = yield* launch(Http.layerNode(() => server, { ...listenOn, name: "web" }))
      yield* awaitPhase("running")
      yield* Metric.update(orders, 3)
      const inFlight = Effect.promise(() => get(portOf(server), "/"))
      const request = yield* Effect.forkChild(inFlight)
      yield* Effect.promise(() => started.promise)
      const running = yield* Effect.promise(() => get(probes.port, "/metrics"))
      yield* fire
      const draining = yield* Effect.promise(() => get(probes.port, "/metrics"))
      release.resolve()
      yield* Fiber.join(request)
      yield* Fiber.join(run)
      assert.strictEqual(running.status, 200)
      assert.strictEqual(running.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
      assert.deepStrictEqual(series(running.body, /^effect_graceful_in_flight\{/), [`effect_graceful_in_flight{group="web"} 1`])
      assert.deepStrictEqual(series(running.body, /^effect_graceful_phase\{.*\} 1$/), [`effect_graceful_phase{phase="running"} 1`])
      assert.deepStrictEqual(series(running.body, /^orders_total/), ["orders_total 3"])
      assert.include(running.body, "# TYPE effect_graceful_units_started_total counter")
      assert.deepStrictEqual(series(draining.body, /^effect_graceful_phase\{.*\} 1$/), [`effect_graceful_phase{phase="draining"} 1`])
      assert.deepStrictEqual(series(draining.body, /^effect_graceful_in_flight\{/), [`effect_graceful_in_flight{group="web"} 1`])
    }), { drainDelay: "300 millis" }))

  it.live("off unless asked; on a program's server with a path of its own", () =>
    withQuit(Effect.gen(function*() {
      const plain = yield* Effect.map(
        Layer.build(Health.layer(listenOn)),
        (context) => context.mapUnsafe.get(Health.Server.key) as Health.Server["Service"]
      )
      const server = NodeHttp.createServer((_req, res) => res.end("app"))
      yield* Layer.build(Http.layerNode(() => server, { ...listenOn, health: { metrics: "/internal/metrics" } }))
      const off = yield* Effect.promise(() => get(plain.port, "/metrics"))
      const on = yield* Effect.promise(() => get(portOf(server), "/internal/metrics"))
      const app = yield* Effect.promise(() => get(portOf(server), "/metrics"))
      assert.strictEqual(off.status, 404)
      assert.strictEqual(on.status, 200)
      assert.match(on.body, /^effect_graceful_phase\{phase="running"\} 1$/m)
      assert.strictEqual(app.body, "app", "other paths are the app's")
    }), {}, { phase: "running" }))
})
