/**
 * Seeing a shutdown while it runs: the progress log line every interval
 * (what is still open, the time left to the next deadline), the same as a
 * Stream, and the quit event's own metric series. TestClock drives time.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, Metric, Stream } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import { Closer, Options, Quit, Shutdown } from "../src/index.ts"
import { captureLogs } from "./support/logs.ts"

const noEnv = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({}))

/**
 * `Shutdown.run(Shutdown.launch(layer))` on a fresh quit event (and metric
 * registry), with `env` as the environment; `drive` steps the TestClock,
 * `after` runs once the report is out.
 */
const supervise = <E>(
  layer: Layer.Layer<never, E, Quit.Quit>,
  options: Options.Input,
  drive: Effect.Effect<void, never, Quit.Quit>,
  { after = Effect.void, env = {} }: { readonly after?: Effect.Effect<void>; readonly env?: Record<string, string> } = {}
) =>
  Effect.gen(function*() {
    const running = yield* Effect.forkChild(Shutdown.run(Shutdown.launch(layer)), { startImmediately: true })
    yield* drive
    const report = yield* Fiber.join(running)
    yield* after
    return report
  }).pipe(
    Effect.provide(Quit.layer(options, { phase: "starting" })),
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env)),
    Effect.provideService(Metric.MetricRegistry, new Map())
  )

/** A group "api" with two units that end 2.5 s after the quit event, and a closer "db" that takes 1 s. */
const Program = Layer.effectDiscard(Effect.gen(function*() {
  const group = yield* Quit.group("api", { kind: "http" })
  for (let i = 0; i < 2; i++) yield* group.fork(Effect.sleep("2500 millis"))
})).pipe(Layer.provide(Layer.effectDiscard(Closer.add("db", Effect.sleep("1 second")))))

const options = { drainDelay: "0 millis", drainTimeout: "10 seconds", closeTimeout: "5 seconds", shutdownTimeout: "20 seconds" } as const

const fire = Effect.andThen(Effect.yieldNow, Quit.fire(Quit.signal("SIGTERM")))

describe("progress", () => {
  it.effect("every second from the quit event, a line names what is still open and the time left to the next deadline", () => {
    const { logs, provide } = captureLogs()
    return provide(Effect.gen(function*() {
      const report = yield* supervise(
        Program,
        options,
        Effect.gen(function*() {
          yield* fire
          yield* TestClock.adjust("999 millis")
          assert.deepStrictEqual(logs.filter((log) => log.text.startsWith("shutting down")), [], "none before the first interval")
          yield* TestClock.adjust("5 seconds")
        })
      )
      const lines = logs.filter((log) => log.text.startsWith("shutting down")).map((log) => log.text)
      assert.deepStrictEqual(lines, [
        "shutting down for 1.0 s; waiting on db (closer, not yet closing), api (http, closing, 2 in flight); 9.0 s to the drain deadline",
        "shutting down for 2.0 s; waiting on db (closer, not yet closing), api (http, closing, 2 in flight); 8.0 s to the drain deadline",
        "shutting down for 3.0 s; waiting on db (closer, closing); 7.0 s to the drain deadline"
      ])
      assert.strictEqual(report.ending, "graceful")
      assert.strictEqual(report.totalMillis, 3500)
    }))
  })

  it.effect("PROGRESS_INTERVAL=0 turns the line off; PROGRESS_INTERVAL=2s spaces it", () => {
    const { logs, provide } = captureLogs()
    const run = (interval: string) =>
      Effect.gen(function*() {
        logs.length = 0
        yield* supervise(Program, options, Effect.andThen(fire, TestClock.adjust("5 seconds")), { env: { PROGRESS_INTERVAL: interval } })
        return logs.filter((log) => log.text.startsWith("shutting down")).map((log) => log.text.slice(0, 24))
      })
    return provide(Effect.gen(function*() {
      assert.deepStrictEqual(yield* run("0"), [])
      assert.deepStrictEqual(yield* run("2s"), ["shutting down for 2.0 s;"])
    }))
  })

  it.effect("a bad PROGRESS_INTERVAL is refused, naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Options.load().pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({ PROGRESS_INTERVAL: "often" })))
      )
      assert.strictEqual(error._tag, "InvalidOption")
      assert.match(error.message, /^PROGRESS_INTERVAL="often": expected a duration/)
    }))

  it.effect("Quit.progress: the same as data, from the quit event until the shutdown ends", () =>
    Effect.gen(function*() {
      const seen: Array<Quit.Progress> = []
      yield* supervise(
        Program,
        options,
        Effect.gen(function*() {
          yield* Effect.forkChild(Stream.runForEach(Quit.progress("1 second"), (p) => Effect.sync(() => seen.push(p))), {
            startImmediately: true
          })
          yield* fire
          yield* TestClock.adjust("5 seconds")
        })
      )
      assert.deepStrictEqual(
        seen.map((p) => [p.open.map((open) => `${open.name}:${open.state}:${open.inFlight ?? "-"}`).join(" "), p.next?.deadline]),
        [
          ["db:open:- api:closing:2", "drain"],
          ["db:open:- api:closing:2", "drain"],
          ["db:open:- api:closing:2", "drain"],
          ["db:closing:-", "drain"]
        ]
      )
      const error = yield* Effect.flip(Stream.runDrain(Quit.progress("0 millis"))).pipe(Effect.provide(Quit.layer()), noEnv)
      assert.match(error.message, /Quit.progress interval="0 millis": must be more than 0/)
    }))
})

describe("the quit event's metric series", () => {
  it.effect("phase, time since the quit event and the shutdown's duration, in the Prometheus text format", () =>
    Effect.gen(function*() {
      const scrapes: Array<string> = []
      const scrape = Effect.flatMap(PrometheusMetrics.format(), (text) =>
        Effect.sync(() => scrapes.push(text.split("\n").filter((line) => /^effect_graceful_(phase|since|shutdown)/.test(line) && !line.endsWith(" 0")).join("\n"))))
      yield* supervise(
        Program,
        options,
        Effect.gen(function*() {
          yield* Effect.yieldNow
          yield* scrape
          yield* fire
          yield* TestClock.adjust("2 seconds")
          yield* scrape
          yield* TestClock.adjust("5 seconds")
        }),
        { after: scrape }
      )
      assert.deepStrictEqual(scrapes, [
        `effect_graceful_phase{phase="running"} 1`,
        `effect_graceful_phase{phase="stopping"} 1\neffect_graceful_since_quit_seconds 2`,
        `effect_graceful_phase{phase="stopped"} 1\neffect_graceful_since_quit_seconds 7\neffect_graceful_shutdown_duration_seconds 3.5`
      ])
    }))
})
