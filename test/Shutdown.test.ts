import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { Closer, type Options, Quit, Shutdown } from "../src/index.ts"
import { captureLogs } from "./support/logs.ts"
import { current, sequence } from "./support/quit.ts"

const closer = (name: string, log: Array<string>, close: Effect.Effect<void> = Effect.void) =>
  Layer.effectDiscard(Effect.gen(function*() {
    log.push(`open ${name}`)
    yield* Closer.add(name, Effect.andThen(close, Effect.sync(() => log.push(`close ${name}`))))
  }))

/** Runs the shutdown sequence in a fiber on a fresh quit event; `drive` steps the TestClock. */
const supervise = <E>(
  program: Effect.Effect<unknown, E, Quit.Quit>,
  options: Options.Input,
  drive: Effect.Effect<void, never, Quit.Quit>,
  phase: "starting" | "running" = "starting"
) =>
  Effect.gen(function*() {
    const running = yield* Effect.forkChild(Shutdown.run(program), { startImmediately: true })
    yield* drive
    const report = yield* Fiber.join(running)
    const history = yield* Quit.history
    return { report, phases: history.map((change) => `${change.phase}@${change.at}`) }
  }).pipe(Effect.provide(Quit.layer(options, { phase })))

describe("Shutdown.run", () => {
  it.effect("runs the phases in order: drain delay while serving, then finalizers, then stopped", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const { phases, report } = yield* supervise(
        Shutdown.launch(Layer.mergeAll(closer("http", log), closer("worker", log)).pipe(Layer.provide(closer("db", log)))),
        { drainDelay: "5 seconds" },
        Effect.gen(function*() {
          yield* TestClock.adjust("1 second")
          yield* Quit.fire(Quit.signal("SIGTERM"))
          yield* TestClock.adjust("4999 millis")
          assert.strictEqual((yield* Quit.phase).phase, "draining")
          assert.deepStrictEqual(log.filter((l) => l.startsWith("close")), [], "nothing closes during the drain delay")
          yield* TestClock.adjust("1 millis")
        })
      )
      assert.deepStrictEqual(phases, ["starting@0", "running@0", "draining@1000", "stopping@6000", "stopped@6000"])
      assert.deepStrictEqual(log.slice(0, 3).sort(), ["open db", "open http", "open worker"])
      assert.deepStrictEqual(log.slice(3, 5).sort(), ["close http", "close worker"])
      assert.strictEqual(log[5], "close db", "a dependency closes after what uses it")
      assert.deepInclude(report, { reason: "SIGTERM", ending: "graceful", exitCode: 0, totalMillis: 5000 })
      assert.deepStrictEqual(report.rows.map((row) => [row.name, row.outcome]).sort(), [
        ["db", "done"],
        ["http", "done"],
        ["worker", "done"]
      ])
    })
  })

  it.effect("the shutdown timeout ends a shutdown hung outside the library: exit 1, and what is still open is logged", () => {
    const { logs, provide } = captureLogs()
    const log: Array<string> = []
    return Effect.gen(function*() {
      // A finalizer of the user's own that never ends holds the closer below it.
      const Hung = Layer.effectDiscard(Effect.addFinalizer(() => Effect.never))
      const { report } = yield* supervise(
        Shutdown.launch(Layer.merge(Hung.pipe(Layer.provide(closer("broker", log))), closer("cache", log))),
        { shutdownTimeout: "10 seconds", drainDelay: "2 seconds" },
        Effect.gen(function*() {
          yield* Quit.fire(Quit.signal("SIGTERM"))
          yield* TestClock.adjust("9999 millis")
          assert.strictEqual((yield* Quit.phase).phase, "stopping")
          yield* TestClock.adjust("1 millis")
        })
      )
      assert.deepInclude(report, { ending: "deadline", exitCode: 1, totalMillis: 10_000 })
      const broker = report.rows.find((row) => row.name === "broker")!
      assert.deepInclude(broker, { outcome: "abandoned", millis: undefined, detail: "never began closing" })
      assert.strictEqual(report.rows.find((row) => row.name === "cache")!.outcome, "done")
      const error = logs.find((l) => l.level === "Error")!
      assert.include(error.text, "shutdown timeout of 10s passed")
      assert.include(error.text, "broker (closer, not yet closing)")
    }).pipe(provide)
  })

  it.effect("a second signal forces the exit at once with 128 + its number", () =>
    Effect.gen(function*() {
      const Hung = Layer.effectDiscard(Effect.addFinalizer(() => Effect.never))
      const { report } = yield* supervise(
        Shutdown.launch(Hung),
        { shutdownTimeout: "30 seconds" },
        Effect.gen(function*() {
          yield* Quit.fire(Quit.signal("SIGINT"))
          yield* TestClock.adjust("3 seconds")
          const quit = yield* current
          quit.force("SIGINT")
        })
      )
      assert.deepInclude(report, { ending: "forced", exitCode: 130, totalMillis: 3000 })
    }))

  it.effect("a signal during startup skips the drain delay and releases what was acquired", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const SlowToStart = Layer.effectDiscard(Effect.sleep("1 minute").pipe(Effect.andThen(Effect.sync(() => log.push("never")))))
      const { phases, report } = yield* supervise(
        Shutdown.launch(SlowToStart.pipe(Layer.provide(closer("db", log)))),
        { drainDelay: "10 seconds" },
        Effect.gen(function*() {
          yield* TestClock.adjust("2 seconds")
          yield* Quit.fire(Quit.signal("SIGTERM"))
        })
      )
      assert.deepStrictEqual(log, ["open db", "close db"])
      assert.deepStrictEqual(phases, ["starting@0", "draining@2000", "stopping@2000", "stopped@2000"])
      assert.deepInclude(report, { ending: "graceful", exitCode: 0 })
    })
  })

  it.effect("a program that completes exits 0; one that fails exits 1 and its cause is logged", () => {
    const { logs, provide } = captureLogs()
    return Effect.gen(function*() {
      const done = yield* supervise(Effect.void, {}, Effect.void, "running")
      assert.deepInclude(done.report, { ending: "completed", exitCode: 0, reason: "program completed" })
      const failed = yield* supervise(Effect.fail(new Error("no database")), {}, Effect.void, "running")
      assert.deepInclude(failed.report, { ending: "failed", exitCode: 1 })
      assert.include(logs.find((l) => l.text === "the program failed")!.cause, "no database")
    }).pipe(provide)
  })

  it.effect("a failing or timed-out closer makes the exit code 1", () =>
    Effect.gen(function*() {
      const Failing = Layer.effectDiscard(Closer.add("files", Effect.fail("disk gone")))
      const { report } = yield* supervise(Shutdown.launch(Failing), {}, Quit.fire("test").pipe(Effect.asVoid))
      assert.deepInclude(report, { ending: "graceful", exitCode: 1 })
      assert.strictEqual(report.rows[0]!.outcome, "failed")
    }))

  it.effect("a quit event fired by a failure makes the exit code 1", () =>
    Effect.gen(function*() {
      const { report } = yield* supervise(
        Shutdown.launch(Layer.empty),
        {},
        Effect.map(current, (quit) => sequence.fail(quit, Quit.failure("uncaught exception", new Error("x"))))
      )
      assert.deepInclude(report, { reason: "failure: uncaught exception", exitCode: 1 })
    }))

  it.effect("stop functions run when stopping begins; registered closers after the layers, last first", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const Registers = Layer.effectDiscard(Effect.gen(function*() {
        yield* Quit.registerCloser("metrics", () => void log.push("close metrics"))
        yield* Quit.registerCloser("tracer", async () => void log.push("close tracer"))
        yield* Quit.registerStopFunc("legacy server", Effect.sync(() => log.push("stop legacy server")))
      }))
      yield* supervise(
        Shutdown.launch(Layer.merge(Registers, closer("db", log))),
        { drainDelay: "1 second" },
        Effect.gen(function*() {
          yield* Quit.fire("test")
          yield* TestClock.adjust("999 millis")
          assert.deepStrictEqual(log, ["open db"])
          yield* TestClock.adjust("1 millis")
        })
      )
      assert.deepStrictEqual(log, ["open db", "stop legacy server", "close db", "close tracer", "close metrics"])
    })
  })

  it.effect("units tracked outside any scope are waited for after the program, then cut at the drain timeout", () => {
    const log: Array<string> = []
    return Effect.gen(function*() {
      const Detached = Layer.effectDiscard(Effect.gen(function*() {
        yield* Effect.sleep("3 seconds").pipe(
          Effect.andThen(Effect.sync(() => log.push("receipt sent"))),
          Quit.track("receipts"),
          Effect.forkDetach
        )
        yield* Effect.sleep("1 hour").pipe(
          Effect.onInterrupt(() => Effect.sync(() => log.push("report interrupted"))),
          Quit.track("reports"),
          Effect.forkDetach
        )
      }))
      const { report } = yield* supervise(
        Shutdown.launch(Detached),
        { drainTimeout: "5 seconds" },
        Effect.gen(function*() {
          yield* Effect.yieldNow
          yield* Quit.fire("test")
          yield* TestClock.adjust("5 seconds")
        })
      )
      assert.deepStrictEqual(log, ["receipt sent", "report interrupted"])
      const byName = Object.fromEntries(report.rows.map((row) => [row.name, row]))
      assert.deepInclude(byName["receipts"], { outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0, millis: 3000 })
      assert.deepInclude(byName["reports"], { outcome: "cut", inFlightAtDrain: 1, inFlightAtEnd: 0, millis: 5000 })
      assert.strictEqual(report.exitCode, 0)
    })
  })
})
