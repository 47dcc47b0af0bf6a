import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Closer, Quit, Shutdown } from "effect-graceful"

it.effect("a hung closer is abandoned at its timeout; the exit code says so", () =>
  Effect.gen(function*() {
    const Hung = Layer.effectDiscard(Closer.add("broker", Effect.never, { timeout: "2 seconds" }))
    const shutdown = yield* Effect.forkChild(Shutdown.run(Shutdown.launch(Hung)))
    yield* Quit.fire(Quit.signal("SIGTERM"))
    yield* TestClock.adjust("2 seconds")
    const report = yield* Fiber.join(shutdown)
    assert.strictEqual(report.exitCode, 1)
    assert.strictEqual(report.rows[0]?.outcome, "timed out")
  }).pipe(Effect.provide(Quit.layer({ drainDelay: 0 }))))
