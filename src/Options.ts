/**
 * The timing of a graceful shutdown, from code and from the environment.
 *
 * Three durations shape every shutdown:
 *
 * - **drain delay** (`DRAIN_DELAY`, default 0): from the quit event to the
 *   listeners closing. Readiness already reports not-ready, so load balancers
 *   and Kubernetes stop routing traffic while requests are still served.
 * - **drain timeout** (`DRAIN_TIMEOUT`, default 20 s): how long in-flight work
 *   may continue after its listener closes before it is cut.
 * - **shutdown timeout** (`SHUTDOWN_TIMEOUT`, default 30 s): the hard deadline
 *   from the quit event to process exit.
 *
 * Environment values win over values from code, so operators can tune a
 * deployed service. Durations accept Effect's forms (`"5 seconds"`,
 * `"500 millis"`) and the short forms operators type (`5s`, `500ms`, `2m`,
 * `1h`, `0`).
 *
 * @since 0.1.0
 */
import { Config, ConfigProvider, Data, Duration as D, Effect, Option, Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { constants } from "node:os"

/**
 * The resolved options every component reads from the `Quit` service.
 *
 * @since 0.1.0
 */
export interface Options {
  readonly drainDelay: D.Duration
  readonly drainTimeout: D.Duration
  readonly shutdownTimeout: D.Duration
  /** Default bound for one closer or stop function (`CLOSE_TIMEOUT`, default 5 s). */
  readonly closeTimeout: D.Duration
  /** Signals that fire the quit event (`SHUTDOWN_SIGNALS`, default `SIGTERM,SIGINT`). */
  readonly signals: ReadonlyArray<NodeJS.Signals>
  /** How logs and the shutdown report are written (`LOG_FORMAT`: `text` or `json`). */
  readonly logFormat: "text" | "json"
}

/**
 * A duration as code may give it: any `Duration.Input` (`"5 seconds"`,
 * `Duration.millis(500)`, a number of milliseconds) or a short form (`"5s"`).
 *
 * @since 0.1.0
 */
export type DurationInput = D.Input | `${number}${"ms" | "s" | "m" | "h"}`

/**
 * Options as given from code; every field is optional and the environment
 * overrides it.
 *
 * @since 0.1.0
 */
export interface Input {
  readonly drainDelay?: DurationInput | undefined
  readonly drainTimeout?: DurationInput | undefined
  readonly shutdownTimeout?: DurationInput | undefined
  readonly closeTimeout?: DurationInput | undefined
  readonly signals?: ReadonlyArray<NodeJS.Signals> | undefined
  readonly logFormat?: "text" | "json" | undefined
}

/**
 * The defaults, used where neither code nor the environment says otherwise.
 *
 * @since 0.1.0
 */
export const defaults: Options = {
  drainDelay: D.zero,
  drainTimeout: D.seconds(20),
  shutdownTimeout: D.seconds(30),
  closeTimeout: D.seconds(5),
  signals: ["SIGTERM", "SIGINT"],
  logFormat: "text"
}

/**
 * A setting that cannot be used. `variable` names the environment variable
 * (or the option, when the value came from code) and `value` is what was given.
 *
 * @since 0.1.0
 */
export class InvalidOption extends Data.TaggedError("InvalidOption")<{
  readonly variable: string
  readonly value: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.variable}=${JSON.stringify(this.value)}: ${this.reason}`
  }
}

const SHORT_FORM = /^(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)$/
const UNITS = { ms: D.millis, s: D.seconds, m: D.minutes, h: D.hours } as const
const EXPECTED = `expected a duration such as 5s, 500ms, 2m or "5 seconds"`

/**
 * Parses a duration as operators write it. Fails with the reason in words.
 *
 * @example
 * ```ts
 * import { Options } from "effect-graceful"
 * Options.parseDuration("1.5s") // Result.succeed(Duration.millis(1500))
 * Options.parseDuration("soon") // Result.fail("expected a duration such as …")
 * ```
 * @since 0.1.0
 */
export const parseDuration = (text: string): Result.Result<D.Duration, string> => {
  const trimmed = text.trim()
  const short = SHORT_FORM.exec(trimmed)
  const parsed: Option.Option<D.Duration> = trimmed === "0"
    ? Option.some(D.zero)
    : short !== null
    ? Option.some(UNITS[short[2] as keyof typeof UNITS](Number(short[1])))
    : D.fromInput(trimmed as D.Input)
  if (Option.isNone(parsed)) return Result.fail(EXPECTED)
  return validate(parsed.value)
}

const validate = (duration: D.Duration): Result.Result<D.Duration, string> =>
  !D.isFinite(duration)
    ? Result.fail("must be finite")
    : D.isNegative(duration)
    ? Result.fail("must not be negative")
    : Result.succeed(duration)

const DurationFromText = Schema.String.pipe(Schema.decodeTo(
  Schema.Duration,
  SchemaTransformation.transformEffect({
    decode: (text: string, options) =>
      Result.match(parseDuration(text), {
        onFailure: (reason) =>
          Effect.fail(new SchemaIssue.InvalidValue({ message: `${JSON.stringify(text)}: ${reason}` }, text, options)),
        onSuccess: Effect.succeed
      }),
    encode: (duration: D.Duration) => Effect.succeed(D.format(duration))
  })
))

/**
 * A `Config` for a non-negative duration that also accepts the short forms
 * (`5s`, `500ms`, `2m`). Use it for your own settings.
 *
 * @example
 * ```ts
 * import { Config, Duration } from "effect"
 * import { Options } from "effect-graceful"
 * const pollInterval = Options.Duration("POLL_INTERVAL").pipe(Config.withDefault(Duration.seconds(1)))
 * ```
 * @since 0.1.0
 */
export const Duration = (name: string): Config.Config<D.Duration> => Config.schema(DurationFromText, name)

const SIGNALS = new Set(Object.keys(constants.signals))

const fromEnv = <A>(
  variable: string,
  parse: (text: string) => Result.Result<A, string>
): Effect.Effect<Option.Option<A>, InvalidOption> =>
  Config.option(Config.String(variable)).pipe(
    Effect.mapError((error) => new InvalidOption({ variable, value: "", reason: error.message })),
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeedNone,
      onSome: (text) =>
        Result.match(parse(text), {
          onFailure: (reason) => Effect.fail(new InvalidOption({ variable, value: text, reason })),
          onSuccess: (value) => Effect.succeedSome(value)
        })
    }))
  )

/**
 * Decodes a duration given in code, naming `variable` in the error.
 *
 * @since 0.1.0
 */
export const decodeDuration = (input: DurationInput, variable: string): Result.Result<D.Duration, InvalidOption> => {
  const parsed = typeof input === "string" ? parseDuration(input) : Option.match(D.fromInput(input), {
    onNone: () => Result.fail(EXPECTED),
    onSome: validate
  })
  return Result.mapError(parsed, (reason) => new InvalidOption({ variable, value: String(input), reason }))
}

/**
 * Like {@link decodeDuration}, with a fallback for `undefined`; throws the
 * `InvalidOption`. Per-resource options (a closer's timeout) use it: a bad
 * literal in code is a defect that names the option, found at startup.
 *
 * @since 0.1.0
 */
export const decodeDurationUnsafe = (
  input: DurationInput | undefined,
  fallback: D.Duration,
  variable: string
): D.Duration => {
  if (input === undefined) return fallback
  const result = decodeDuration(input, variable)
  if (Result.isFailure(result)) throw result.failure
  return result.success
}

const durationFromCode = (
  variable: string,
  input: DurationInput | undefined,
  fallback: D.Duration
): Effect.Effect<D.Duration, InvalidOption> =>
  input === undefined ? Effect.succeed(fallback) : Effect.fromResult(decodeDuration(input, variable))

const duration = (variable: string, option: keyof Input & `${string}${"Delay" | "Timeout"}`) =>
(input: Input): Effect.Effect<D.Duration, InvalidOption> =>
  fromEnv(variable, parseDuration).pipe(Effect.flatMap(Option.match({
    onNone: () => durationFromCode(`${option} option`, input[option], defaults[option]),
    onSome: Effect.succeed
  })))

const parseSignals = (text: string): Result.Result<ReadonlyArray<NodeJS.Signals>, string> => {
  const names = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  const unknown = names.filter((name) => !SIGNALS.has(name))
  if (names.length === 0) return Result.fail("expected a list of signals such as SIGTERM,SIGINT")
  if (unknown.length > 0) return Result.fail(`unknown signal ${unknown.join(", ")}`)
  return Result.succeed(names as ReadonlyArray<NodeJS.Signals>)
}

const parseLogFormat = (text: string): Result.Result<"text" | "json", string> =>
  text === "text" || text === "json" ? Result.succeed(text) : Result.fail(`expected "text" or "json"`)

/**
 * Resolves the options: the environment (through Effect's `ConfigProvider`)
 * over the values from code over the defaults. Fails with `InvalidOption`
 * naming the variable and its value when a duration does not parse or is
 * negative, a signal is unknown, or the drain delay is not shorter than the
 * shutdown timeout.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Options } from "effect-graceful"
 * const program = Effect.gen(function*() {
 *   const options = yield* Options.load({ drainDelay: "5 seconds" })
 *   yield* Effect.log(options.shutdownTimeout)
 * })
 * ```
 * @since 0.1.0
 */
export const load = (input: Input = {}): Effect.Effect<Options, InvalidOption> =>
  Effect.gen(function*() {
    const drainDelay = yield* duration("DRAIN_DELAY", "drainDelay")(input)
    const drainTimeout = yield* duration("DRAIN_TIMEOUT", "drainTimeout")(input)
    const shutdownTimeout = yield* duration("SHUTDOWN_TIMEOUT", "shutdownTimeout")(input)
    const closeTimeout = yield* duration("CLOSE_TIMEOUT", "closeTimeout")(input)
    const signals = Option.getOrElse(
      yield* fromEnv("SHUTDOWN_SIGNALS", parseSignals),
      () => input.signals ?? defaults.signals
    )
    const logFormat = Option.getOrElse(
      yield* fromEnv("LOG_FORMAT", parseLogFormat),
      () => input.logFormat ?? defaults.logFormat
    )
    if (!D.isLessThan(drainDelay, shutdownTimeout)) {
      return yield* new InvalidOption({
        variable: "DRAIN_DELAY",
        value: D.format(drainDelay),
        reason: `must be shorter than SHUTDOWN_TIMEOUT (${D.format(shutdownTimeout)})`
      })
    }
    return { drainDelay, drainTimeout, shutdownTimeout, closeTimeout, signals, logFormat }
  })

/**
 * Like {@link load}, from code alone: the environment is not read. For tests
 * and for embedding.
 *
 * @since 0.1.0
 */
export const fromCode = (input: Input = {}): Effect.Effect<Options, InvalidOption> =>
  load(input).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({})))
