/**
 * Platform presets: each platform stops a process its own way — a signal,
 * then SIGKILL after a grace period — and a shutdown timeout longer than that
 * grace ends in SIGKILL mid-drain, before the report.
 *
 * | platform | recognised by | signal | grace (default) |
 * | --- | --- | --- | --- |
 * | Cloud Run | `K_SERVICE` | SIGTERM | 10 s |
 * | Amazon ECS | `ECS_CONTAINER_METADATA_URI_V4` | SIGTERM | 30 s (`stopTimeout`) |
 * | Fly.io | `FLY_APP_NAME` | SIGINT | 5 s (`kill_timeout`) |
 * | Heroku | `DYNO` | SIGTERM | 30 s |
 * | Nomad | `NOMAD_ALLOC_ID` | SIGINT | 5 s (`kill_timeout`) |
 * | Kubernetes | `KUBERNETES_SERVICE_HOST` | SIGTERM | 30 s (`terminationGracePeriodSeconds`) |
 *
 * `PLATFORM=<id>` (`cloud-run`, `ecs`, `fly`, `heroku`, `nomad`,
 * `kubernetes`) chooses one, `PLATFORM=none` turns presets off, and
 * `PLATFORM_GRACE` gives the grace a deployment configured. With a preset,
 * `Main.runMain`:
 *
 * - derives the shutdown timeout from the grace less a margin (2 s, or a
 *   tenth of the grace) when `SHUTDOWN_TIMEOUT` is set neither in the
 *   environment nor in code;
 * - makes the platform's signal fire the quit event (added to signals given
 *   in code; `SHUTDOWN_SIGNALS` without it is warned about);
 * - says in one line at start what it chose and why, and warns about an
 *   explicit setting that cannot fit the grace. Explicit settings always win.
 *
 * @since 0.1.0
 */
import { Config, Duration, Effect, Layer, Option, Schema } from "effect"
import { read } from "./internal/core/configError.ts"
import { current } from "./internal/core/quit.ts"
import * as internal from "./internal/hosts/platform.ts"
import * as Options from "./Options.ts"
import * as Quit from "./Quit.ts"

/** A platform's id, as `PLATFORM` takes it. @category models @since 0.1.0 */
export type Id = internal.Id

/**
 * A platform's stop contract: its `signal`, its default `grace` until
 * SIGKILL, the `variable` that recognises it.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { Platform } from "effect-graceful"
 * for (const p of Platform.presets) console.log(p.name, p.signal, Duration.format(p.grace))
 * ```
 * @category models
 * @since 0.1.0
 */
export type Preset = internal.Preset

/** Every preset, in the order they are recognised. @category constants @since 0.1.0 */
export const presets: ReadonlyArray<Preset> = internal.PRESETS

/**
 * The shutdown timeout that fits a grace period: the grace less a margin of
 * 2 s or a tenth of it, whichever is more (Cloud Run's 10 s gives 8 s).
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { Platform } from "effect-graceful"
 * console.log(Duration.format(Platform.fitting(Duration.seconds(30)))) // 27s
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const fitting: (grace: Duration.Duration) => Duration.Duration = internal.fitting

/**
 * What a preset made of the options: the platform chosen (with the grace
 * in force), the input for `Options.load`, the line that says what was
 * chosen and why, and warnings.
 *
 * @category models
 * @since 0.1.0
 */
export interface Applied {
  readonly platform: Option.Option<{ readonly preset: Preset; readonly grace: Duration.Duration; readonly why: string }>
  readonly input: Options.Input
  readonly notes: ReadonlyArray<string>
  readonly warnings: ReadonlyArray<string>
}

const DEFAULT_SIGNALS: ReadonlyArray<NodeJS.Signals> = ["SIGTERM", "SIGINT"]

const environment = read(Config.all({
  platform: Config.option(Config.schema(Schema.Literals([...internal.IDS, "none"]), "PLATFORM")),
  grace: Config.option(Options.Duration("PLATFORM_GRACE")),
  shutdownTimeout: Config.option(Config.String("SHUTDOWN_TIMEOUT")),
  signals: Config.option(Config.String("SHUTDOWN_SIGNALS")),
  detected: Config.all(Object.fromEntries(internal.PRESETS.map((p) => [p.variable, Config.option(Config.String(p.variable))])))
}))

/**
 * Chooses the platform from the environment (through `Config`) and applies
 * its preset to `input`. Fails with `InvalidOption` for a `PLATFORM` or
 * `PLATFORM_GRACE` that cannot be used.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Platform } from "effect-graceful"
 * const program = Effect.gen(function*() {
 *   const applied = yield* Platform.apply({ drainDelay: "1 second" })
 *   for (const note of applied.notes) yield* Effect.log(note)
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const apply = (input: Options.Input = {}): Effect.Effect<Applied, Options.InvalidOption> =>
  Effect.map(environment, (env): Applied => {
    const chosen: Option.Option<{ readonly preset: Preset; readonly why: string }> = Option.match(env.platform, {
      onSome: (id) => id === "none" ? Option.none() : Option.some({ preset: internal.byId(id), why: `PLATFORM=${id}` }),
      onNone: () => {
        const set = Object.fromEntries(Object.entries(env.detected).map(([k, v]) => [k, Option.getOrUndefined(v)]))
        return Option.map(Option.fromUndefinedOr(internal.detect(set)), (preset) => ({ preset, why: `${preset.variable} is set` }))
      }
    })
    if (Option.isNone(chosen)) return { platform: Option.none(), input, notes: [], warnings: [] }
    const { preset, why } = chosen.value
    const grace = Option.getOrElse(env.grace, () => preset.grace)
    const seconds = Duration.format(grace)
    const parts = [`it sends ${preset.signal}, then SIGKILL ${seconds} later${Option.isSome(env.grace) ? " (PLATFORM_GRACE)" : ""}`]
    const warnings: Array<string> = []
    let next: Options.Input = input
    if (Option.isNone(env.shutdownTimeout) && input.shutdownTimeout === undefined) {
      const derived = internal.fitting(grace)
      next = { ...next, shutdownTimeout: derived }
      parts.push(`SHUTDOWN_TIMEOUT ${Duration.format(derived)}: that grace less ${Duration.format(internal.margin(grace))} for the report and the exit`)
    } else parts.push(`SHUTDOWN_TIMEOUT as set`)
    const signals = Option.match(env.signals, {
      onSome: (text) => text.split(",").map((s) => s.trim()),
      onNone: () => input.signals ?? DEFAULT_SIGNALS
    })
    if (!signals.includes(preset.signal)) {
      if (Option.isSome(env.signals)) {
        warnings.push(
          `SHUTDOWN_SIGNALS=${env.signals.value} leaves out ${preset.signal}, which ${preset.name} sends to stop the process: ` +
            `it will be SIGKILLed ${seconds} later without draining`
        )
      } else {
        next = { ...next, signals: [...signals as ReadonlyArray<NodeJS.Signals>, preset.signal] }
        parts.push(`${preset.signal} added to the shutdown signals`)
      }
    } else parts.push(`${preset.signal} fires the quit event`)
    return {
      platform: Option.some({ preset, grace, why }),
      input: next,
      notes: [`platform ${preset.name} (${why}): ${parts.join("; ")}`],
      warnings
    }
  })

/**
 * Warnings for resolved options that cannot fit the platform's grace: a
 * shutdown timeout past it (SIGKILL comes before the report), or leaving
 * less than the margin.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Options, Platform } from "effect-graceful"
 * const warnings = Effect.gen(function*() {
 *   const applied = yield* Platform.apply()
 *   return Platform.check(applied, yield* Options.load(applied.input))
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const check = (applied: Applied, options: Options.Options): ReadonlyArray<string> =>
  Option.match(applied.platform, {
    onNone: () => [],
    onSome: ({ grace, preset }) => {
      const fits = internal.fitting(grace)
      if (Duration.isLessThanOrEqualTo(options.shutdownTimeout, fits)) return []
      const where = preset.graceSetting === undefined ? "" : `, or raise ${preset.graceSetting} and say so with PLATFORM_GRACE`
      return [
        `SHUTDOWN_TIMEOUT ${Duration.format(options.shutdownTimeout)} does not fit ${preset.name}'s grace: SIGKILL comes ` +
          `${Duration.format(grace)} after ${preset.signal}, ${
            Duration.isGreaterThan(options.shutdownTimeout, grace) ? "before the shutdown deadline" : "with too little left for the report"
          }; set SHUTDOWN_TIMEOUT to at most ${Duration.format(fits)}${where}`
      ]
    }
  })

/**
 * The options with the platform's preset applied: {@link apply}, then
 * `Options.load`, then {@link check}; what to log at start in `notes` and
 * `warnings`. A budget that cannot hold fails with `InvalidOption`, saying
 * when the shutdown timeout came from the preset.
 *
 * @example
 * ```ts
 * import { Duration, Effect } from "effect"
 * import { Platform } from "effect-graceful"
 * const program = Effect.gen(function*() {
 *   const { applied, options } = yield* Platform.load({ drainDelay: "1 second" })
 *   yield* Platform.log(applied)
 *   yield* Effect.log(`shutdown timeout ${Duration.format(options.shutdownTimeout)}`)
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const load = (input: Options.Input = {}): Effect.Effect<
  { readonly options: Options.Options; readonly applied: Applied },
  Options.InvalidOption
> =>
  Effect.gen(function*() {
    const applied = yield* apply(input)
    const options = yield* Options.load(applied.input).pipe(Effect.mapError((error) =>
      Option.isSome(applied.platform) && input.shutdownTimeout === undefined && applied.input.shutdownTimeout !== undefined
        ? new Options.InvalidOption({
          ...error,
          reason: `${error.reason} (SHUTDOWN_TIMEOUT was derived from ${applied.platform.value.preset.name}'s grace; ` +
            `PLATFORM=none turns the preset off)`
        })
        : error
    ))
    return { options, applied: { ...applied, warnings: [...applied.warnings, ...check(applied, options)] } }
  })

/**
 * Logs what {@link load} chose: the notes as information, the warnings as
 * warnings.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Platform } from "effect-graceful"
 * const logged = Effect.flatMap(Platform.load(), ({ applied }) => Platform.log(applied))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const log = (applied: Applied): Effect.Effect<void> =>
  Effect.andThen(
    Effect.forEach(applied.notes, (note) => Effect.logInfo(note), { discard: true }),
    Effect.forEach(applied.warnings, (warning) => Effect.logWarning(warning), { discard: true })
  )

/**
 * `Quit.layer` with the platform's preset applied and logged, for runners
 * other than `Main.runMain` (which applies it itself).
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 * import { Closer, Platform } from "effect-graceful"
 * const App = Closer.layerDiscard("db", Effect.log("db closed"))
 * NodeRuntime.runMain(Layer.launch(App.pipe(Layer.provide(Platform.quitLayer()))))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const quitLayer = (
  input: Options.Input = {},
  config: { readonly phase?: "starting" | "running" } = {}
): Layer.Layer<Quit.Quit, Options.InvalidOption> =>
  Layer.unwrap(Effect.map(apply(input), (applied) =>
    Layer.provideMerge(
      Layer.effectDiscard(Effect.flatMap(current, (quit) => log({ ...applied, warnings: [...applied.warnings, ...check(applied, quit.options)] }))),
      Quit.layer(applied.input, config)
    )))
