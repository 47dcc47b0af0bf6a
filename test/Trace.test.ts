/**
 * The shutdown as a trace: a span `shutdown`, children for the phases, and
 * under `stopping` one span per resource with its outcome and counts — with
 * the times at which each step began and ended. A recording tracer, TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Fiber, Layer, Scope, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { Closer, Quit, Shutdown } from "../src/index.ts"

/** Effect's own spans, kept. */
const recording = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

const noEnv = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({}))

/** A group "api" with two units, one ending at 2.5 s and one stuck (cut at the drain deadline, 3 s); a closer "db" (1 s) below it. */
const Program = Layer.effectDiscard(Effect.gen(function*() {
  const group = yield* Quit.group("api", { kind: "http" })
  yield* group.fork(Effect.sleep("2500 millis"))
  yield* group.fork(Effect.never)
})).pipe(Layer.provide(Layer.effectDiscard(Closer.add("db", Effect.sleep("1 second")))))

const options = { drainDelay: "1 second", drainTimeout: "2 seconds", closeTimeout: "2 seconds", shutdownTimeout: "10 seconds" } as const

// Times in milliseconds from the quit event.
const view = (spans: ReadonlyArray<Tracer.NativeSpan>, fired: bigint) => {
  const byId = new Map(spans.map((span) => [span.spanId, span]))
  return spans.map((span) => {
    const parent = span.parent._tag === "Some" ? byId.get(span.parent.value.spanId)?.name : undefined
    const status = span.status
    const ended = status._tag === "Ended" ? status : undefined
    return {
      name: span.name,
      parent,
      from: Number((span.startTime - fired) / 1_000_000n),
      to: ended === undefined ? undefined : Number((ended.endTime - fired) / 1_000_000n),
      ok: ended === undefined ? undefined : Exit.isSuccess(ended.exit),
      attributes: Object.fromEntries(span.attributes)
    }
  })
}

describe("the shutdown as a trace", () => {
  it.effect("Shutdown.run: shutdown → draining, stopping → one span per resource, with its outcome and counts", () => {
    const { spans, tracer } = recording()
    return Effect.gen(function*() {
      const run = yield* Effect.forkChild(Shutdown.run(Shutdown.launch(Program)), { startImmediately: true })
      yield* Effect.yieldNow
      yield* Quit.fire(Quit.signal("SIGTERM"))
      const fired = BigInt((yield* Effect.clockWith((clock) => clock.currentTimeMillis))) * 1_000_000n
      assert.deepStrictEqual(spans, [], "made when the shutdown has ended, not on its way")
      yield* TestClock.adjust("10 seconds")
      const report = yield* Fiber.join(run)
      assert.deepInclude(report, { ending: "graceful", exitCode: 0, totalMillis: 4000 })
      assert.deepStrictEqual(view(spans, fired), [
        { name: "shutdown", parent: undefined, from: 0, to: 4000, ok: true, attributes: {
          "effect_graceful.reason": "SIGTERM",
          "effect_graceful.ending": "graceful",
          "effect_graceful.exit_code": 0
        } },
        { name: "draining", parent: "shutdown", from: 0, to: 1000, ok: true, attributes: {} },
        { name: "stopping", parent: "shutdown", from: 1000, to: 4000, ok: true, attributes: {} },
        { name: "closer db", parent: "stopping", from: 3000, to: 4000, ok: true, attributes: {
          "effect_graceful.name": "db",
          "effect_graceful.kind": "closer",
          "effect_graceful.outcome": "done"
        } },
        { name: "http api", parent: "stopping", from: 1000, to: 3000, ok: false, attributes: {
          "effect_graceful.name": "api",
          "effect_graceful.kind": "http",
          "effect_graceful.outcome": "cut",
          "effect_graceful.detail": "1 cut at the drain deadline",
          "effect_graceful.in_flight.at_drain": 2,
          "effect_graceful.in_flight.at_end": 0,
          "effect_graceful.cut": 1
        } }
      ])
    }).pipe(Effect.provide(Quit.layer(options, { phase: "starting" })), noEnv, Effect.withTracer(tracer))
  })

  it.effect("Quit.layer under another runner: the same spans, through the tracer of the quit event's context", () => {
    const { spans, tracer } = recording()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Program.pipe(Layer.provideMerge(Quit.layer(options))), scope)
      yield* Quit.fire({ _tag: "Requested", reason: "test" }).pipe(Effect.provideContext(context))
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(closing)
      assert.deepStrictEqual(spans.map((span) => span.name), ["shutdown", "draining", "stopping", "closer db", "http api"])
      assert.strictEqual(spans[0]!.attributes.get("effect_graceful.reason"), "requested: test")
      assert.isFalse(spans[0]!.attributes.has("effect_graceful.ending"), "only a runner knows how the run ended")
    }).pipe(noEnv, Effect.withTracer(tracer))
  })
})
