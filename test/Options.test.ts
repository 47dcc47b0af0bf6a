import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Result } from "effect"
import { Options } from "../src/index.ts"

const withEnv = (env: Record<string, string>) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provideService(effect, ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

const millis = (result: Result.Result<Duration.Duration, string>) =>
  Result.isSuccess(result) ? Duration.toMillis(result.success) : result.failure

describe("durations", () => {
  it("accept Effect's forms and the short forms operators type", () => {
    assert.strictEqual(millis(Options.parseDuration("5 seconds")), 5000)
    assert.strictEqual(millis(Options.parseDuration("500 millis")), 500)
    assert.strictEqual(millis(Options.parseDuration("5s")), 5000)
    assert.strictEqual(millis(Options.parseDuration("500ms")), 500)
    assert.strictEqual(millis(Options.parseDuration("2m")), 120_000)
    assert.strictEqual(millis(Options.parseDuration("1.5s")), 1500)
    assert.strictEqual(millis(Options.parseDuration("1h")), 3_600_000)
    assert.strictEqual(millis(Options.parseDuration(" 0 ")), 0)
  })

  it("reject what is not a duration, negative and infinite ones, with the reason in words", () => {
    assert.match(String(millis(Options.parseDuration("soon"))), /expected a duration such as 5s/)
    assert.match(String(millis(Options.parseDuration("5000"))), /expected a duration/)
    assert.strictEqual(millis(Options.parseDuration("-5s")), "must not be negative")
    assert.strictEqual(millis(Options.parseDuration("-5 seconds")), "must not be negative")
    assert.strictEqual(millis(Options.parseDuration("Infinity")), "must be finite")
  })

  it.effect("Options.Duration is a Config for your own settings", () =>
    Effect.gen(function*() {
      const poll = yield* Options.Duration("POLL").pipe(withEnv({ POLL: "250ms" }))
      assert.strictEqual(Duration.toMillis(poll), 250)
      const error = yield* Effect.flip(Options.Duration("POLL")).pipe(withEnv({ POLL: "fast" }))
      assert.include(error.message, `"fast": expected a duration`)
      assert.include(error.message, "POLL")
      const fallback = yield* Options.Duration("POLL").pipe(Config.withDefault(Duration.seconds(1)), withEnv({}))
      assert.strictEqual(Duration.toMillis(fallback), 1000)
    }))
})

describe("Options.load", () => {
  it.effect("uses the defaults: no drain delay, 20 s drain timeout, 30 s shutdown timeout", () =>
    Effect.gen(function*() {
      const options = yield* Options.load().pipe(withEnv({}))
      assert.strictEqual(Duration.toMillis(options.drainDelay), 0)
      assert.strictEqual(Duration.toMillis(options.drainTimeout), 20_000)
      assert.strictEqual(Duration.toMillis(options.shutdownTimeout), 30_000)
      assert.strictEqual(Duration.toMillis(options.closeTimeout), 5_000)
      assert.deepStrictEqual(options.signals, ["SIGTERM", "SIGINT"])
      assert.strictEqual(options.logFormat, "text")
    }))

  it.effect("the environment wins over code, code over the defaults", () =>
    Effect.gen(function*() {
      const options = yield* Options.load({ drainDelay: "1 second", drainTimeout: "7 seconds", signals: ["SIGUSR2"] })
        .pipe(withEnv({ DRAIN_DELAY: "3s", SHUTDOWN_TIMEOUT: "1m", SHUTDOWN_SIGNALS: "SIGTERM, SIGHUP", LOG_FORMAT: "json" }))
      assert.strictEqual(Duration.toMillis(options.drainDelay), 3000)
      assert.strictEqual(Duration.toMillis(options.drainTimeout), 7000)
      assert.strictEqual(Duration.toMillis(options.shutdownTimeout), 60_000)
      assert.deepStrictEqual(options.signals, ["SIGTERM", "SIGHUP"])
      assert.strictEqual(options.logFormat, "json")
    }))

  it.effect("a bad value fails with a typed error naming the variable and the value", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Options.load().pipe(withEnv({ DRAIN_TIMEOUT: "ten seconds" })))
      assert.strictEqual(error._tag, "InvalidOption")
      assert.strictEqual(error.variable, "DRAIN_TIMEOUT")
      assert.strictEqual(error.value, "ten seconds")
      assert.strictEqual(
        error.message,
        `DRAIN_TIMEOUT="ten seconds": expected a duration such as 5s, 500ms, 2m or "5 seconds"`
      )
      const negative = yield* Effect.flip(Options.load().pipe(withEnv({ SHUTDOWN_TIMEOUT: "-1s" })))
      assert.strictEqual(negative.message, `SHUTDOWN_TIMEOUT="-1s": must not be negative`)
      const signal = yield* Effect.flip(Options.load().pipe(withEnv({ SHUTDOWN_SIGNALS: "SIGTERM,SIGNOPE" })))
      assert.strictEqual(signal.message, `SHUTDOWN_SIGNALS="SIGTERM,SIGNOPE": unknown signal SIGNOPE`)
      const format = yield* Effect.flip(Options.load().pipe(withEnv({ LOG_FORMAT: "xml" })))
      assert.strictEqual(format.variable, "LOG_FORMAT")
    }))

  it.effect("a drain delay not shorter than the shutdown timeout is refused", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Options.load().pipe(withEnv({ DRAIN_DELAY: "30s" })))
      assert.strictEqual(error.message, `DRAIN_DELAY="30s": must be shorter than SHUTDOWN_TIMEOUT (30s, the default)`)
      const ok = yield* Options.load({ shutdownTimeout: "40 seconds" }).pipe(withEnv({ DRAIN_DELAY: "30s" }))
      assert.strictEqual(Duration.toMillis(ok.drainDelay), 30_000)
    }))

  it.effect("bad values from code name the option", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Options.fromCode({ closeTimeout: -5 }))
      assert.strictEqual(error.variable, "closeTimeout option")
      assert.strictEqual(error.reason, "must not be negative")
    }))

  it.effect("a signal listed twice counts once, from the environment and from code", () =>
    Effect.gen(function*() {
      const env = yield* Options.load().pipe(withEnv({ SHUTDOWN_SIGNALS: "SIGTERM,SIGINT,SIGTERM" }))
      assert.deepStrictEqual(env.signals, ["SIGTERM", "SIGINT"])
      const code = yield* Options.load({ signals: ["SIGTERM", "SIGHUP", "SIGTERM"] }).pipe(withEnv({}))
      assert.deepStrictEqual(code.signals, ["SIGTERM", "SIGHUP"])
    }))

  it.effect("a drain delay from code that does not fit is named as the option it came from", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Options.load({ drainDelay: "3s" }).pipe(withEnv({ SHUTDOWN_TIMEOUT: "2s" })))
      assert.strictEqual(error.variable, "drainDelay option")
      assert.strictEqual(error.message, `drainDelay option="3s": must be shorter than SHUTDOWN_TIMEOUT=2s`)
      const env = yield* Effect.flip(Options.load().pipe(withEnv({ DRAIN_DELAY: "3s", SHUTDOWN_TIMEOUT: "2s" })))
      assert.strictEqual(env.message, `DRAIN_DELAY="3s": must be shorter than SHUTDOWN_TIMEOUT=2s`)
    }))
})
