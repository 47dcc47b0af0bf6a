/**
 * The timing of a graceful shutdown, from code and from the environment.
 *
 * Four durations shape every shutdown, and all of them count from the quit
 * event, so that they never add up along the layer graph:
 *
 * - **drain delay** (`DRAIN_DELAY`, default 0): from the quit event to the
 *   listeners closing (phase `stopping`). Readiness already reports not-ready,
 *   so load balancers stop routing here while requests are still served.
 *   `DRAIN_DELAY=auto` (or `auto 1s..10s`, minimum..maximum; default
 *   1 s..10 s) ends it once the instance has evidence that routing here has
 *   stopped — every prober of readiness answered not ready in 3 rounds, and no
 *   request for 500 ms — never before the minimum, at the latest at the
 *   maximum; the budget rule counts the maximum.
 * - **drain timeout** (`DRAIN_TIMEOUT`): from the end of the drain delay to the
 *   **drain deadline**, when every unit still in flight is cut — wherever its
 *   group sits in the layer graph.
 * - **close timeout** (`CLOSE_TIMEOUT`): from the drain deadline to the
 *   **close deadline**, when every closer still running is abandoned.
 * - **shutdown timeout** (`SHUTDOWN_TIMEOUT`, default 30 s): from the quit
 *   event to the **shutdown deadline**, when `Main.runMain` exits whatever is
 *   still open.
 *
 * The budget rule `drainDelay + drainTimeout + closeTimeout ≤ shutdownTimeout`
 * is checked at start, so that any layer graph ends before the shutdown
 * deadline. The drain and close timeouts not set share out what the others
 * leave of the shutdown timeout, 4 : 1 with one part spare (30 s gives 20 s
 * and 5 s; `SHUTDOWN_TIMEOUT=10s` alone gives 6.666 s and 1.666 s). Values set
 * that cannot fit are refused, naming each.
 *
 * Environment values win over values from code, so operators can tune a
 * deployed service. Durations accept Effect's forms (`"5 seconds"`,
 * `"500 millis"`) and the short forms operators type (`5s`, `500ms`, `2m`,
 * `1h`, `0`).
 *
 * @since 0.1.0
 */
import type { Config, Duration as D, Effect, Result } from "effect"
import * as internal from "./internal/core/options.ts"

/**
 * The resolved options every component reads from the quit event
 * (`Quit.options`). `origins` says where each timing came from.
 *
 * @category models
 * @since 0.1.0
 */
export type Options = internal.Options

/**
 * Where a timing came from: the environment, code, the default, or derived by
 * the budget rule from the shutdown timeout.
 *
 * @category models
 * @since 0.1.0
 */
export type Origin = internal.Origin

/**
 * A duration as code may give it: any `Duration.Input` (`"5 seconds"`,
 * `Duration.millis(500)`, a number of milliseconds) or a short form (`"5s"`).
 *
 * @category models
 * @since 0.1.0
 */
export type DurationInput = internal.DurationInput

/**
 * Every setting of an automatic drain delay (`drainDelay: { auto: { … } }`):
 * `min` (default 1 s) and `max` (default 10 s, the fixed delay it replaces),
 * `notReady` (default 3: the rounds of not-ready answers each prober must have had, as
 * a balancer's `fall` or Kubernetes' `failureThreshold`), `quiet` (default
 * 500 ms: how long no request may have arrived).
 *
 * @category models
 * @since 0.1.0
 */
export type AutoDrainDelay = internal.AutoInput

/**
 * Options as given from code; every field is optional and the environment
 * overrides it. `signals` (`SHUTDOWN_SIGNALS`, default `SIGTERM,SIGINT`) fire
 * the quit event; `logFormat` (`LOG_FORMAT`: `text` or `json`) is how logs and
 * the report are written.
 *
 * @category models
 * @since 0.1.0
 */
export type Input = internal.Input

/**
 * A setting that cannot be used. `variable` names the environment variable
 * (or the option, when the value came from code) and `value` is what was
 * given; `reason` says what is expected.
 *
 * @category errors
 * @since 0.1.0
 */
export const InvalidOption: typeof internal.InvalidOption = internal.InvalidOption
/** @category models @since 0.1.0 */
export type InvalidOption = internal.InvalidOption

/**
 * Parses a duration as operators write it. Fails with the reason in words.
 *
 * @example
 * ```ts
 * import { Duration, Result } from "effect"
 * import { Options } from "effect-graceful"
 * const parsed = Options.parseDuration("1.5s")
 * console.log(Result.isSuccess(parsed) && Duration.toMillis(parsed.success)) // 1500
 * console.log(Result.isFailure(Options.parseDuration("soon"))) // true
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const parseDuration: (text: string) => Result.Result<D.Duration, string> = internal.parseDuration

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
 * @category constructors
 * @since 0.1.0
 */
export const Duration: (name: string) => Config.Config<D.Duration> = internal.durationConfig

/**
 * Resolves the options: the environment (through Effect's `ConfigProvider`)
 * over the values from code over the defaults, then the budget rule. Fails
 * with `InvalidOption` naming the variable and its value when a duration does
 * not parse or is negative, a signal is unknown or cannot be caught, or the
 * values set do not fit in the shutdown timeout.
 *
 * @example
 * ```ts
 * import { Duration, Effect } from "effect"
 * import { Options } from "effect-graceful"
 * const program = Effect.gen(function*() {
 *   const options = yield* Options.load({ shutdownTimeout: "10 seconds" })
 *   yield* Effect.log(Duration.format(options.drainTimeout)) // 6s 666ms, derived
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const load: (input?: Input) => Effect.Effect<Options, InvalidOption> = internal.load

/**
 * Like {@link load}, from code alone: the environment is not read. For tests
 * and for embedding.
 *
 * @category combinators
 * @since 0.1.0
 */
export const fromCode: (input?: Input) => Effect.Effect<Options, InvalidOption> = internal.fromCode
