/**
 * Resolving the options: durations as operators type them, the environment
 * over code over the defaults, and the budget rule that makes every deadline
 * fit inside the shutdown timeout.
 *
 * @internal
 */
import { Config, ConfigProvider, Data, Duration as D, Effect, Option, Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import { constants } from "node:os"
import type { Auto, Mode } from "./routing.ts"

/** The four timings of a shutdown. @internal */
export type Timing = "drainDelay" | "drainTimeout" | "closeTimeout" | "shutdownTimeout"

/** Where a timing came from: for messages that say what to change. @internal */
export type Origin = "environment" | "code" | "default" | "derived"

/** @internal */
export interface Options {
  /** The drain delay; with `DRAIN_DELAY=auto`, its maximum (the deadlines fall as if it lasted that long). */
  readonly drainDelay: D.Duration
  /** How the drain delay ends: after `drainDelay`, or by the evidence of `routing.ts`. */
  readonly drainDelayMode: Mode
  readonly drainTimeout: D.Duration
  readonly shutdownTimeout: D.Duration
  readonly closeTimeout: D.Duration
  readonly signals: ReadonlyArray<NodeJS.Signals>
  readonly logFormat: "text" | "json"
  /** How often the shutdown logs what it still waits on; zero: never. */
  readonly progressInterval: D.Duration
  readonly origins: { readonly [T in Timing]: Origin }
}

/** @internal */
export type DurationInput = D.Input | `${number}${"ms" | "s" | "m" | "h"}`

/** @internal */
export interface Input {
  /**
   * A duration, or `"auto"` / `"auto 1s..10s"` (minimum..maximum), or
   * `{ auto: { … } }` for every setting of the automatic drain delay.
   */
  readonly drainDelay?: DurationInput | DrainDelayAuto | { readonly auto: AutoInput } | undefined
  readonly drainTimeout?: DurationInput | undefined
  readonly shutdownTimeout?: DurationInput | undefined
  readonly closeTimeout?: DurationInput | undefined
  readonly signals?: ReadonlyArray<NodeJS.Signals> | undefined
  readonly logFormat?: "text" | "json" | undefined
  readonly progressInterval?: DurationInput | undefined
}

/** The text form of an automatic drain delay: `auto`, or `auto 1s..10s` (minimum..maximum). @internal */
export type DrainDelayAuto = "auto" | `auto ${string}..${string}`

/** Every setting of an automatic drain delay; each has a default. @internal */
export interface AutoInput {
  /** Never close the listeners sooner (default 1 s). */
  readonly min?: DurationInput | undefined
  /** Close them then whatever the evidence (default 10 s): the fixed delay it replaces. */
  readonly max?: DurationInput | undefined
  /** Rounds of not-ready answers each prober must have had (default 3). */
  readonly notReady?: number | undefined
  /** How long no request may have arrived (default 500 ms). */
  readonly quiet?: DurationInput | undefined
}

/** The defaults of an automatic drain delay. @internal */
export const AUTO_DEFAULTS = { min: D.seconds(1), max: D.seconds(10), notReady: 3, quiet: D.millis(500) } as const

/** The environment variable of each timing. @internal */
export const VARIABLES: { readonly [T in Timing]: string } = {
  drainDelay: "DRAIN_DELAY",
  drainTimeout: "DRAIN_TIMEOUT",
  closeTimeout: "CLOSE_TIMEOUT",
  shutdownTimeout: "SHUTDOWN_TIMEOUT"
}

/** How often a shutdown logs its progress when nothing says otherwise. @internal */
export const DEFAULT_PROGRESS_INTERVAL = D.seconds(1)

/** The shutdown timeout when none is set, and the drain delay. @internal */
export const DEFAULT_SHUTDOWN_TIMEOUT = D.seconds(30)

// What the drain delay and the values set leave of the shutdown timeout is
// shared out among the timeouts not set, in these parts, with one part spare
// for the report and the exit: 30 s gives 20 s and 5 s.
const SHARES = { drainTimeout: 4, closeTimeout: 1, spare: 1 } as const

/** @internal */
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

/** @internal */
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

/** @internal */
export const durationConfig = (name: string): Config.Config<D.Duration> => Config.schema(DurationFromText, name)

/** @internal */
export const decodeDuration = (input: DurationInput, variable: string): Result.Result<D.Duration, InvalidOption> => {
  const parsed = typeof input === "string" ? parseDuration(input) : Option.match(D.fromInput(input), {
    onNone: () => Result.fail(EXPECTED),
    onSome: validate
  })
  return Result.mapError(parsed, (reason) => new InvalidOption({ variable, value: String(input), reason }))
}

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

type Given = { readonly value: D.Duration; readonly origin: "environment" | "code" } | undefined

const given = (timing: Exclude<Timing, "drainDelay">, input: Input): Effect.Effect<Given, InvalidOption> =>
  fromEnv(VARIABLES[timing], parseDuration).pipe(Effect.flatMap((env): Effect.Effect<Given, InvalidOption> => {
    if (Option.isSome(env)) return Effect.succeed({ value: env.value, origin: "environment" })
    const code = input[timing]
    if (code === undefined) return Effect.succeed(undefined)
    return Effect.map(Effect.fromResult(decodeDuration(code, `${timing} option`)), (value) => ({ value, origin: "code" } as const))
  }))

interface DrainDelay {
  readonly given: Given
  readonly mode: Mode
}

const AUTO_TEXT = /^auto(?:\s+(\S+?)\s*\.\.\s*(\S+))?$/i
const AUTO_EXPECTED = `expected a duration such as 5s, or "auto", or "auto 1s..10s" (minimum..maximum)`

const autoOf = (input: AutoInput, variable: string): Result.Result<{ readonly max: D.Duration; readonly mode: Auto }, InvalidOption> => {
  const value = JSON.stringify(input)
  const invalid = (reason: string) => Result.fail(new InvalidOption({ variable, value, reason }))
  const duration = (field: "min" | "max" | "quiet") => {
    const given = input[field]
    return given === undefined ? Result.succeed(AUTO_DEFAULTS[field]) : decodeDuration(given, `${variable} (${field})`)
  }
  return Result.flatMap(Result.all([duration("min"), duration("max"), duration("quiet")]), ([min, max, quiet]) => {
    const notReady = input.notReady ?? AUTO_DEFAULTS.notReady
    if (!Number.isInteger(notReady) || notReady < 1) return invalid(`notReady must be a whole number of answers, 1 or more`)
    if (D.isGreaterThan(min, max)) return invalid(`its minimum ${D.format(min)} is longer than its maximum ${D.format(max)}`)
    return Result.succeed({ max, mode: { _tag: "Auto", min, notReady, quiet } as const })
  })
}

const parseDrainDelay = (text: string, variable: string): Result.Result<{ readonly max: D.Duration; readonly mode: Mode }, InvalidOption> => {
  const auto = AUTO_TEXT.exec(text.trim())
  if (auto === null) {
    if (/^auto/i.test(text.trim())) return Result.fail(new InvalidOption({ variable, value: text, reason: AUTO_EXPECTED }))
    return Result.mapBoth(parseDuration(text), {
      onFailure: (reason) => new InvalidOption({ variable, value: text, reason: `${reason}, or "auto"` }),
      onSuccess: (max) => ({ max, mode: { _tag: "Fixed" } as const })
    })
  }
  const [, min, max] = auto
  if (min === undefined || max === undefined) return autoOf({}, variable)
  return Result.mapError(
    autoOf({ min: min as DurationInput, max: max as DurationInput }, variable),
    (error) => new InvalidOption({ variable, value: text, reason: error.reason })
  )
}

const givenDrainDelay = (input: Input): Effect.Effect<DrainDelay, InvalidOption> =>
  Config.option(Config.String(VARIABLES.drainDelay)).pipe(
    Effect.mapError((error) => new InvalidOption({ variable: VARIABLES.drainDelay, value: "", reason: error.message })),
    Effect.flatMap((env): Effect.Effect<DrainDelay, InvalidOption> => {
      type Resolved = Result.Result<{ readonly max: D.Duration; readonly mode: Mode; readonly origin: "environment" | "code" }, InvalidOption>
      const resolved: Resolved | undefined = Option.isSome(env)
        ? Result.map(parseDrainDelay(env.value, VARIABLES.drainDelay), (parsed) => ({ ...parsed, origin: "environment" as const }))
        : input.drainDelay === undefined
        ? undefined
        : Result.map(
          typeof input.drainDelay === "object" && input.drainDelay !== null && "auto" in input.drainDelay
            ? autoOf(input.drainDelay.auto, "drainDelay option")
            : typeof input.drainDelay === "string"
            ? parseDrainDelay(input.drainDelay, "drainDelay option")
            : Result.map(decodeDuration(input.drainDelay, "drainDelay option"), (max) => ({ max, mode: { _tag: "Fixed" } as const })),
          (parsed) => ({ ...parsed, origin: "code" as const })
        )
      if (resolved === undefined) return Effect.succeed({ given: undefined, mode: { _tag: "Fixed" } })
      return Effect.map(Effect.fromResult(resolved), ({ max, mode, origin }) => ({ given: { value: max, origin }, mode }))
    })
  )

// Signals that cannot be listened to: Node refuses them with EINVAL.
const UNCATCHABLE = new Set(["SIGKILL", "SIGSTOP"])
const SIGNALS = new Set(Object.keys(constants.signals).filter((name) => !UNCATCHABLE.has(name)))

const parseSignals = (text: string): Result.Result<ReadonlyArray<NodeJS.Signals>, string> => {
  const names = text.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  if (names.length === 0) return Result.fail("expected a list of signals such as SIGTERM,SIGINT")
  const uncatchable = names.filter((name) => UNCATCHABLE.has(name))
  if (uncatchable.length > 0) return Result.fail(`${uncatchable.join(", ")} cannot be caught by a process`)
  const unknown = names.filter((name) => !SIGNALS.has(name))
  if (unknown.length > 0) return Result.fail(`unknown signal ${unknown.join(", ")}`)
  // A signal listed twice (a deploy script appending to a default) is one
  // signal: listened to once, so that one delivery is never a second signal.
  return Result.succeed([...new Set(names)] as ReadonlyArray<NodeJS.Signals>)
}

const parseLogFormat = (text: string): Result.Result<"text" | "json", string> =>
  text === "text" || text === "json" ? Result.succeed(text) : Result.fail(`expected "text" or "json"`)

/**
 * A timing as messages name it: `DRAIN_TIMEOUT=15s`, `drainTimeout option
 * (15s)`, `CLOSE_TIMEOUT (5s, the default)`, `CLOSE_TIMEOUT (4.2s, derived)`.
 *
 * @internal
 */
export const describeTiming = (options: Pick<Options, Timing | "origins">, timing: Timing): string => {
  const value = D.format(options[timing])
  switch (options.origins[timing]) {
    case "environment":
      return `${VARIABLES[timing]}=${value}`
    case "code":
      return `${VARIABLES[timing]} (${value}, the ${timing} option)`
    case "default":
      return `${VARIABLES[timing]} (${value}, the default)`
    case "derived":
      return `${VARIABLES[timing]} (${value}, derived from SHUTDOWN_TIMEOUT)`
  }
}

/** How an error names a timing that was set: its variable, or the option it came from in code. */
const settingOf = (timing: Timing, origin: Origin): string => origin === "code" ? `${timing} option` : VARIABLES[timing]

const share = (left: number, parts: number, of: number) => D.millis(Math.floor((left * parts) / of))

/**
 * The budget rule: `drainDelay + drainTimeout + closeTimeout ≤
 * shutdownTimeout`. Values set (environment or code) are kept; the shutdown
 * timeout defaults to 30 s; the drain timeout and close timeout not set share
 * out what the others leave of it (4 : 1, one part spare). Set values that
 * cannot fit are refused, naming each.
 *
 * @internal
 */
export const budget = (set: { readonly [T in Timing]: Given }): Result.Result<Pick<Options, Timing | "origins">, InvalidOption> => {
  const shutdownTimeout = set.shutdownTimeout?.value ?? DEFAULT_SHUTDOWN_TIMEOUT
  const drainDelay = set.drainDelay?.value ?? D.zero
  const fixed = D.toMillis(drainDelay) + D.toMillis(set.drainTimeout?.value ?? D.zero) +
    D.toMillis(set.closeTimeout?.value ?? D.zero)
  const left = D.toMillis(shutdownTimeout) - fixed
  const open = (["drainTimeout", "closeTimeout"] as const).filter((timing) => set[timing] === undefined)
  const parts = open.reduce((sum, timing) => sum + SHARES[timing], open.length === 0 ? 0 : SHARES.spare)
  const origins = {
    drainDelay: set.drainDelay?.origin ?? "default",
    drainTimeout: set.drainTimeout?.origin ?? "derived",
    closeTimeout: set.closeTimeout?.origin ?? "derived",
    shutdownTimeout: set.shutdownTimeout?.origin ?? "default"
  } as const
  const resolved = {
    drainDelay,
    shutdownTimeout,
    drainTimeout: set.drainTimeout?.value ?? share(Math.max(0, left), SHARES.drainTimeout, parts),
    closeTimeout: set.closeTimeout?.value ?? share(Math.max(0, left), SHARES.closeTimeout, parts),
    origins
  }
  if (!D.isLessThan(drainDelay, shutdownTimeout)) {
    return Result.fail(
      new InvalidOption({
        variable: settingOf("drainDelay", origins.drainDelay),
        value: D.format(drainDelay),
        reason: `must be shorter than ${describeTiming(resolved, "shutdownTimeout")}`
      })
    )
  }
  if (left > 0 || (left === 0 && open.length === 0)) return Result.succeed(resolved)
  // Name the one to change: the shutdown timeout if it was set, else the
  // longest of the others that was set.
  const culprit: Timing = set.shutdownTimeout !== undefined ? "shutdownTimeout" : (["drainDelay", "drainTimeout", "closeTimeout"] as const)
    .filter((timing) => set[timing] !== undefined)
    .reduce((a, b) => D.isGreaterThanOrEqualTo(resolved[a], resolved[b]) ? a : b)
  const terms = (["drainDelay", "drainTimeout", "closeTimeout"] as const)
    .filter((timing) => set[timing] !== undefined)
    .map((timing) => describeTiming(resolved, timing))
  const reason = `${terms.join(" + ")}${terms.length > 1 ? ` = ${D.format(D.millis(fixed))}` : ""} ` +
    `${left < 0 ? "exceeds" : "fills"} ${describeTiming(resolved, "shutdownTimeout")}` +
    (open.length > 0 ? `, leaving nothing for ${open.map((timing) => VARIABLES[timing]).join(" and ")}` : "")
  return Result.fail(
    new InvalidOption({
      variable: settingOf(culprit, origins[culprit]),
      value: D.format(resolved[culprit]),
      reason: `${reason}; raise SHUTDOWN_TIMEOUT or lower the others (every deadline must fall inside it)`
    })
  )
}

/** @internal */
export const load = (input: Input = {}): Effect.Effect<Options, InvalidOption> =>
  Effect.gen(function*() {
    const drainDelay = yield* givenDrainDelay(input)
    const set = {
      drainDelay: drainDelay.given,
      drainTimeout: yield* given("drainTimeout", input),
      closeTimeout: yield* given("closeTimeout", input),
      shutdownTimeout: yield* given("shutdownTimeout", input)
    }
    const timings = yield* Effect.fromResult(budget(set)).pipe(Effect.mapError((error) => {
      // The budget counts an automatic drain delay's maximum: say so, in the words it was given in.
      const mode = drainDelay.mode
      if (mode._tag === "Fixed" || (error.variable !== VARIABLES.drainDelay && error.variable !== "drainDelay option")) return error
      return new InvalidOption({
        variable: error.variable,
        value: `auto ${D.format(mode.min)}..${error.value}`,
        reason: error.reason.startsWith("must") ? `its maximum ${error.value} ${error.reason}` : `the budget counts its maximum: ${error.reason}`
      })
    }))
    const code = input.signals
    const fromCode = code === undefined ? undefined : yield* Effect.fromResult(
      Result.mapError(
        parseSignals(code.join(",")),
        (reason) => new InvalidOption({ variable: "signals option", value: code.join(","), reason })
      )
    )
    const signals: ReadonlyArray<NodeJS.Signals> = Option.getOrElse(
      yield* fromEnv("SHUTDOWN_SIGNALS", parseSignals),
      () => fromCode ?? ["SIGTERM", "SIGINT"]
    )
    const logFormat: "text" | "json" = Option.getOrElse(yield* fromEnv("LOG_FORMAT", parseLogFormat), () => input.logFormat ?? "text")
    const fromEnvironment = yield* fromEnv("PROGRESS_INTERVAL", parseDuration)
    return {
      ...timings,
      drainDelayMode: drainDelay.mode,
      signals,
      logFormat,
      progressInterval: Option.isSome(fromEnvironment)
        ? fromEnvironment.value
        : yield* durationOr(input.progressInterval, DEFAULT_PROGRESS_INTERVAL, "progressInterval option")
    } satisfies Options
  })

/** @internal */
export const fromCode = (input: Input = {}): Effect.Effect<Options, InvalidOption> =>
  load(input).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({})))

/**
 * A component's own timeout (a server's drain timeout, a closer's timeout):
 * the shared one when not given; shorter is fine, longer is refused — a
 * component may end sooner than the shared deadline, never later.
 *
 * @internal
 */
export const componentTimeout = (
  options: Options,
  timing: "drainTimeout" | "closeTimeout",
  input: DurationInput | undefined,
  option: string
): Result.Result<D.Duration, InvalidOption> => {
  if (input === undefined) return Result.succeed(options[timing])
  return Result.flatMap(decodeDuration(input, option), (duration) =>
    D.isGreaterThan(duration, options[timing])
      ? Result.fail(
        new InvalidOption({
          variable: option,
          value: String(input),
          reason: `longer than ${describeTiming(options, timing)}: a component may have a shorter timeout ` +
            `than the shared one, never a longer one`
        })
      )
      : Result.succeed(duration))
}

/** Two resolved options that say the same. @internal */
export const same = (a: Options, b: Options): boolean =>
  (["drainDelay", "drainTimeout", "closeTimeout", "shutdownTimeout"] as const).every((t) => D.equals(a[t], b[t])) &&
  sameMode(a.drainDelayMode, b.drainDelayMode) &&
  a.logFormat === b.logFormat && a.signals.join() === b.signals.join() && D.equals(a.progressInterval, b.progressInterval)

/** A duration given in code, or `fallback` when not given. @internal */
export const durationOr = (
  input: DurationInput | undefined,
  fallback: D.Duration,
  variable: string
): Effect.Effect<D.Duration, InvalidOption> =>
  input === undefined ? Effect.succeed(fallback) : Effect.fromResult(decodeDuration(input, variable))

const sameMode = (a: Mode, b: Mode): boolean =>
  a._tag === "Fixed" || b._tag === "Fixed"
    ? a._tag === b._tag
    : D.equals(a.min, b.min) && D.equals(a.quiet, b.quiet) && a.notReady === b.notReady

/** The shortest the drain delay can be: its duration, or an automatic one's minimum. @internal */
export const shortestDrainDelay = (options: Options): D.Duration =>
  options.drainDelayMode._tag === "Auto" ? options.drainDelayMode.min : options.drainDelay
