/**
 * Platform presets applied to the options, from environments of the test's
 * own: what is derived, what explicit settings keep, what is warned about.
 * (test/e2e/Platform.test.ts runs each platform with its real signal.)
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Option } from "effect"
import { type Options, Platform } from "../src/index.ts"

const load = (env: Record<string, string>, input: Options.Input = {}) =>
  Platform.load(input).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })))

describe("Platform.load", () => {
  it.effect("every preset: a shutdown timeout that leaves at least 2 s of its grace, its signal among the shutdown signals", () =>
    Effect.gen(function*() {
      for (const preset of Platform.presets) {
        const { applied, options } = yield* load({ [preset.variable]: "x" })
        assert.strictEqual(Option.getOrThrow(applied.platform).preset.id, preset.id)
        const left = Duration.toMillis(preset.grace) - Duration.toMillis(options.shutdownTimeout)
        assert.isAtLeast(left, 2_000, preset.name)
        assert.isAtLeast(left, Duration.toMillis(preset.grace) / 10, preset.name)
        assert.include(options.signals, preset.signal)
        assert.lengthOf(applied.notes, 1)
        assert.deepStrictEqual(applied.warnings, [])
      }
    }))

  it.effect("none without a platform, or with PLATFORM=none; PLATFORM chooses over detection", () =>
    Effect.gen(function*() {
      const plain = yield* load({})
      assert.isTrue(Option.isNone(plain.applied.platform))
      assert.strictEqual(Duration.toMillis(plain.options.shutdownTimeout), 30_000)
      const off = yield* load({ K_SERVICE: "api", PLATFORM: "none" })
      assert.isTrue(Option.isNone(off.applied.platform))
      const chosen = yield* load({ K_SERVICE: "api", PLATFORM: "nomad" })
      assert.strictEqual(Option.getOrThrow(chosen.applied.platform).preset.id, "nomad")
      assert.include(chosen.applied.notes[0]!, "(PLATFORM=nomad)")
      const bad = yield* Effect.exit(load({ PLATFORM: "lambda" }))
      assert.isTrue(Exit.isFailure(bad))
      assert.include(String(Exit.isFailure(bad) ? bad.cause : ""), "PLATFORM")
    }))

  it.effect("explicit settings win: the shutdown timeout from code or the environment is kept, and warned about when it cannot fit", () =>
    Effect.gen(function*() {
      const code = yield* load({ FLY_APP_NAME: "api" }, { shutdownTimeout: "3s" })
      assert.strictEqual(Duration.toMillis(code.options.shutdownTimeout), 3_000)
      assert.deepStrictEqual(code.applied.warnings, [])
      const tooLong = yield* load({ FLY_APP_NAME: "api", SHUTDOWN_TIMEOUT: "4s" })
      assert.strictEqual(Duration.toMillis(tooLong.options.shutdownTimeout), 4_000)
      assert.match(tooLong.applied.warnings[0]!, /^SHUTDOWN_TIMEOUT 4s does not fit Fly\.io's grace: SIGKILL comes 5s after SIGINT, with too little left for the report; set SHUTDOWN_TIMEOUT to at most 3s, or raise kill_timeout in fly\.toml and say so with PLATFORM_GRACE$/)
      const raised = yield* load({ FLY_APP_NAME: "api", SHUTDOWN_TIMEOUT: "20s", PLATFORM_GRACE: "30s" })
      assert.deepStrictEqual(raised.applied.warnings, [])
    }))

  it.effect("signals given in code get the platform's added; SHUTDOWN_SIGNALS without it is warned about, not changed", () =>
    Effect.gen(function*() {
      const code = yield* load({ FLY_APP_NAME: "api" }, { signals: ["SIGTERM"] })
      assert.deepStrictEqual(code.options.signals, ["SIGTERM", "SIGINT"])
      assert.include(code.applied.notes[0]!, "SIGINT added to the shutdown signals")
      const env = yield* load({ FLY_APP_NAME: "api", SHUTDOWN_SIGNALS: "SIGTERM" })
      assert.deepStrictEqual(env.options.signals, ["SIGTERM"])
      assert.match(env.applied.warnings[0]!, /SHUTDOWN_SIGNALS=SIGTERM leaves out SIGINT/)
    }))

  it.effect("a budget that cannot hold in the derived shutdown timeout says it was derived, and how to turn the preset off", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(load({ FLY_APP_NAME: "api", DRAIN_DELAY: "5s" }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "derived from Fly.io's grace; PLATFORM=none turns the preset off")
    }))
})
