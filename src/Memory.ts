/**
 * Memory pressure, before the OOM killer: when the process's cgroup stays
 * close to its memory limit, the quit event fires and the instance drains as
 * on SIGTERM — readiness fails first, requests in flight finish, the report
 * says why — instead of being SIGKILLed mid-request when the limit is reached.
 *
 * Opt-in: `MEMORY_HIGH_WATER=90%` (or the `highWater` option). Every
 * `MEMORY_INTERVAL` (1 s) it reads the cgroup — v2 `memory.current`,
 * `memory.max`, `memory.stat`, `memory.pressure`; v1
 * `memory.usage_in_bytes`, `memory.limit_in_bytes`, `memory.stat` — and
 * fires the quit event when
 *
 * - the working set (usage less the inactive file cache, as the kubelet
 *   counts it) stays at or above the high water share of the limit (the
 *   lowest of the cgroup's and its ancestors') for `MEMORY_SUSTAIN` (5 s), or
 * - (v2) PSI says the process stalls on memory: `some avg10` at or above
 *   `MEMORY_PRESSURE` (20%; `off` to ignore it).
 *
 * `MEMORY_CGROUP` points at another folder (a relocated mount, tests). The
 * reason is `memory pressure: …`, and `Main.runMain` exits {@link EXIT_CODE}
 * when the shutdown itself went well.
 *
 * @since 0.1.0
 */
import { Clock, Config, Duration, Effect, Layer, Option, Result, Schedule } from "effect"
import { read } from "./internal/core/configError.ts"
import { durationOr } from "./internal/core/options.ts"
import * as cgroups from "./internal/hosts/cgroup.ts"
import { current } from "./internal/core/quit.ts"
import * as sequence from "./internal/core/sequence.ts"
import { Duration as DurationConfig, type DurationInput, InvalidOption } from "./Options.ts"
import * as Quit from "./Quit.ts"

/**
 * The exit code after a shutdown for memory pressure that went well: 75,
 * `EX_TEMPFAIL` of `sysexits.h` — a temporary failure, worth a restart
 * (systemd's `Restart=on-failure` restarts on it; Kubernetes and the other
 * platforms restart any exit), and not the 137 of an OOM kill.
 *
 * @example
 * ```ts
 * import { Memory } from "effect-graceful"
 * const restartWorthy = (code: number) => code === Memory.EXIT_CODE
 * ```
 * @category constants
 * @since 0.1.0
 */
export const EXIT_CODE = 75

/** A share of the limit: `0.9` or `"90%"`. @category models @since 0.1.0 */
export type Share = number | `${number}%`

/**
 * Options from code; the environment wins (`MEMORY_HIGH_WATER`,
 * `MEMORY_SUSTAIN`, `MEMORY_INTERVAL`, `MEMORY_PRESSURE`, `MEMORY_CGROUP`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The share of the limit that is too close to it. Without it (and without `MEMORY_HIGH_WATER`), nothing is watched. */
  readonly highWater?: Share | undefined
  /** How long the working set must stay at or above it. Default 5 s. */
  readonly sustain?: DurationInput | undefined
  /** How often the cgroup is read. Default 1 s. */
  readonly interval?: DurationInput | undefined
  /** PSI `some avg10` at or above this fires too (v2). Default 20%; `false` ignores PSI. */
  readonly pressure?: Share | false | undefined
  /** The cgroup folder, instead of the process's own. */
  readonly cgroup?: string | undefined
}

/** The settings in force. @category models @since 0.1.0 */
export interface Settings {
  readonly highWater: number
  readonly sustain: Duration.Duration
  readonly interval: Duration.Duration
  readonly pressure: number | undefined
  readonly cgroup: string | undefined
}

const parseShare = (text: string): Result.Result<number, string> => {
  const match = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim())
  const value = match === null ? NaN : Number(match[1]) / (match[2] === "%" ? 100 : 1)
  return value > 0 && value <= 1 ? Result.succeed(value) : Result.fail(`expected a share of the limit such as 90% or 0.9`)
}

const share = (variable: string, value: string | number): Effect.Effect<number, InvalidOption> =>
  Effect.fromResult(Result.mapError(parseShare(String(value)), (reason) => new InvalidOption({ variable, value: String(value), reason })))

const fromEnv = read(Config.all({
  highWater: Config.option(Config.String("MEMORY_HIGH_WATER")),
  sustain: Config.option(DurationConfig("MEMORY_SUSTAIN")),
  interval: Config.option(DurationConfig("MEMORY_INTERVAL")),
  pressure: Config.option(Config.String("MEMORY_PRESSURE")),
  cgroup: Config.option(Config.String("MEMORY_CGROUP"))
}))

// The library's one duration decoder, as for every other setting.
const duration = (variable: string, input: DurationInput | undefined, fallback: Duration.Duration): Effect.Effect<Duration.Duration, InvalidOption> =>
  durationOr(input, fallback, variable)

/**
 * The settings: the environment over `options`; `None` when no high water is
 * set (nothing to watch). Fails with `InvalidOption` for a value that cannot
 * be used.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Memory } from "effect-graceful"
 * const watched = Effect.map(Memory.settings({ highWater: "90%" }), Option.isSome)
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const settings = (options: Options = {}): Effect.Effect<Option.Option<Settings>, InvalidOption> =>
  Effect.gen(function*() {
    const env = yield* fromEnv
    const highWaterText = Option.getOrUndefined(env.highWater) ?? options.highWater
    if (highWaterText === undefined || highWaterText === "") return Option.none()
    const highWater = yield* share(Option.isSome(env.highWater) ? "MEMORY_HIGH_WATER" : "highWater option", highWaterText)
    const sustain = Option.getOrUndefined(env.sustain) ?? (yield* duration("sustain option", options.sustain, Duration.seconds(5)))
    const interval = Option.getOrUndefined(env.interval) ?? (yield* duration("interval option", options.interval, Duration.seconds(1)))
    if (Duration.isZero(interval)) {
      return yield* new InvalidOption({ variable: "MEMORY_INTERVAL", value: "0", reason: "must be more than 0" })
    }
    const pressureText = Option.getOrUndefined(env.pressure) ?? options.pressure
    const pressure = pressureText === false || pressureText === "off"
      ? undefined
      : yield* share(Option.isSome(env.pressure) ? "MEMORY_PRESSURE" : "pressure option", pressureText ?? 0.2)
    return Option.some({ highWater, sustain, interval, pressure, cgroup: Option.getOrUndefined(env.cgroup) ?? options.cgroup })
  })

const MIB = 1024 * 1024
const mib = (n: number) => `${Math.round(n / MIB)} MiB`
const percent = (n: number) => `${Math.round(n * 100)}%`

/**
 * Watches the cgroup with `options` (see the module's doc) until the quit
 * event fires, and fires it for memory pressure. Does nothing without a high
 * water mark; warns and does nothing when there is no cgroup or no limit to
 * watch, or a setting cannot be used. `Main.runMain` runs it (with its
 * `memory` option); under another runner, use {@link layer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Memory, Quit } from "effect-graceful"
 * const program = Effect.forkDetach(Memory.watch({ highWater: "90%", sustain: "10 seconds" })).pipe(Effect.provide(Quit.layer()))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const watch = (options: Options = {}): Effect.Effect<void, never, Quit.Quit> =>
  Effect.flatMap(
    Effect.catch(settings(options), (error) => Effect.as(Effect.logWarning(`memory: ${error.message}; not watching`), Option.none())),
    Option.match({ onNone: () => Effect.void, onSome: run })
  )

/**
 * {@link watch} with settings already resolved ({@link settings}): what
 * `Main.runMain` runs, having refused settings that cannot be used at start.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { Memory } from "effect-graceful"
 * const program = Effect.flatMap(Memory.settings({ highWater: 0.9 }), Option.match({ onNone: () => Effect.void, onSome: Memory.run }))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const run = (s: Settings): Effect.Effect<void, never, Quit.Quit> =>
  Effect.gen(function*() {
    const cgroup = s.cgroup === undefined ? cgroups.locate() : cgroups.at(s.cgroup)
    if (cgroup === undefined) {
      return yield* Effect.logWarning(`memory: no cgroup memory controller found${s.cgroup === undefined ? "" : ` in ${s.cgroup}`}; not watching`)
    }
    const first = cgroups.sample(cgroup)
    const psi = s.pressure !== undefined && first.stall !== undefined
    if (first.limit === undefined && !psi) {
      return yield* Effect.logWarning(`memory: the cgroup ${cgroup.dir} has no memory limit; not watching`)
    }
    yield* Effect.logInfo(
      `memory: watching cgroup ${cgroup.version} ${cgroup.dir}` +
        (first.limit === undefined ? "" : `, limit ${mib(first.limit)}: quitting at ${percent(s.highWater)} for ${Duration.format(s.sustain)}`) +
        (psi ? `, or at PSI some avg10 ${percent(s.pressure!)}` : "")
    )
    const quit = yield* current
    let aboveSince: number | undefined
    const check = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const sample = cgroups.sample(cgroup)
      const used = sample.limit === undefined ? undefined : sample.usage / sample.limit
      let reason: string | undefined
      if (used !== undefined && used >= s.highWater) {
        if (aboveSince === undefined) {
          aboveSince = now
          yield* Effect.logWarning(
            `memory: working set ${mib(sample.usage)} is ${percent(used)} of the ${mib(sample.limit!)} limit; ` +
              `quitting if it stays at or above ${percent(s.highWater)} for ${Duration.format(s.sustain)}`
          )
        }
        if (now - aboveSince >= Duration.toMillis(s.sustain)) {
          reason = `memory pressure: working set ${mib(sample.usage)} is ${percent(used)} of the ${mib(sample.limit!)} limit, ` +
            `at or above ${percent(s.highWater)} for ${Duration.format(Duration.millis(now - aboveSince))}`
        }
      } else if (aboveSince !== undefined) {
        aboveSince = undefined
        yield* Effect.logInfo(`memory: working set back below ${percent(s.highWater)} of the limit`)
      }
      if (reason === undefined && s.pressure !== undefined && sample.stall !== undefined && sample.stall / 100 >= s.pressure) {
        reason = `memory pressure: stalled on memory ${sample.stall}% of the last 10 s (PSI some avg10), at or above ${percent(s.pressure)}`
      }
      if (reason === undefined) return false
      // At once, in one step: firing wakes whatever waits on the quit event — this watch's own race among them.
      const why = reason
      yield* Effect.sync(() => sequence.fire(quit, { _tag: "Host", reason: why, exitCode: EXIT_CODE }))
      return true
    })
    yield* Effect.raceFirst(
      Effect.asVoid(Effect.repeat(check, { until: (fired) => fired, schedule: Schedule.spaced(s.interval) })),
      Effect.asVoid(Quit.fired)
    )
  })

/**
 * {@link watch} as a layer, for runners other than `Main.runMain` (which
 * cannot exit {@link EXIT_CODE}: they exit as they do for a quit event).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Memory } from "effect-graceful"
 * const Watch = Memory.layer({ highWater: "90%", sustain: "10 seconds" })
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<never, never, Quit.Quit> =>
  Layer.effectDiscard(Effect.asVoid(Effect.forkScoped(watch(options))))
