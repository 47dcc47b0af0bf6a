/**
 * `DRAIN_DELAY=auto` behind a gRPC balancer: grpc.health.v1 Check callers are
 * probers as HTTP readiness probers are, and a call routed here during the
 * delay is a request. A real grpc-js server and client, time on the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as Grpc from "../src/Grpc.ts"
import { Quit, Shutdown } from "../src/index.ts"
import { DemoClient, demoProto } from "./support/grpcClient.ts"
import { connect } from "./support/http.ts"

type Messages = {
  readonly Wait: { readonly request: { readonly ms: number; readonly tag: string }; readonly response: { readonly tag: string } }
}

// The clock moves, then the event loop turns once (the rule, woken by time, reads the I/O first).
const after = (millis: number) =>
  TestClock.adjust(Duration.millis(millis)).pipe(
    Effect.andThen(Effect.repeat(Effect.promise(() => new Promise((resolve) => setImmediate(resolve))), { times: 3 }))
  )

const serve = Effect.gen(function*() {
  const ready = yield* Deferred.make<Grpc.Handle>()
  const Demo = yield* Grpc.loadService<Messages>(demoProto, "demo.Demo")
  const service = Grpc.service(Demo, { Wait: Grpc.unary((request) => Effect.succeed({ tag: request.tag })) })
  const program = Effect.scoped(Effect.gen(function*() {
    yield* Deferred.succeed(ready, yield* Grpc.serve({ services: [service], host: "127.0.0.1", port: 0 }))
    return yield* Effect.never
  }))
  const run = yield* Effect.forkChild(Shutdown.run(program), { startImmediately: true })
  const server = yield* Deferred.await(ready)
  const client = new DemoClient(server.address)
  yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
  return {
    run,
    check: Effect.promise(() => client.check("")),
    call: Effect.promise(() => client.unary("Wait", { ms: 0, tag: "late" }).done),
    listening: Effect.map(Effect.promise(() => connect(server.port)), (result) => result === "connected")
  }
})

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>, options: Parameters<typeof Quit.layer>[0]) =>
  Effect.provide(effect, Quit.layer(options)).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))

describe("DRAIN_DELAY=auto with gRPC", () => {
  it.effect("a caller of grpc.health.v1 Check is a prober: the listener closes once it has had NOT_SERVING 3 times", () =>
    withQuit(Effect.gen(function*() {
      const { check, listening, run } = yield* serve
      assert.strictEqual(yield* check, "SERVING")
      yield* after(500)
      assert.strictEqual(yield* check, "SERVING")
      yield* Quit.fire("test")
      for (const _ of [1, 2]) {
        yield* after(500)
        assert.strictEqual(yield* check, "NOT_SERVING")
      }
      yield* after(2000)
      assert.isTrue(yield* listening, "2 NOT_SERVING answers of 3")
      assert.strictEqual(yield* check, "NOT_SERVING")
      yield* Effect.yieldNow
      assert.isFalse(yield* listening, "closed once the third was given")
      yield* after(30_000)
      const report = yield* Fiber.join(run)
      assert.deepInclude(report.drainDelay, { by: "evidence", millis: 3000 })
      assert.match(report.drainDelay?.evidence ?? "", /127\.0\.0\.1 \(gRPC health\) \(every 500ms\)/)
    }), { drainDelay: "auto 1s..10s" }))

  it.effect("a call routed here during the delay pushes its end to a quiet period after it", () =>
    withQuit(Effect.gen(function*() {
      const { call, listening, run } = yield* serve
      yield* Quit.fire("test")
      yield* after(900)
      yield* call
      yield* after(499)
      assert.isTrue(yield* listening, "a call came 499 ms ago")
      yield* after(1)
      assert.isFalse(yield* listening)
      yield* after(30_000)
      assert.deepInclude((yield* Fiber.join(run)).drainDelay, { by: "evidence", millis: 1400, evidence: "no prober; no request for 500ms" })
    }), { drainDelay: "auto 1s..10s" }))
})
