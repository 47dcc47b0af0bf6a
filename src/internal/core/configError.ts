/**
 * A `Config` error in an operator's words: the variable, the value it has,
 * and what was expected — `PORT="abc": expected a port number` — where
 * Effect's own message says `SchemaError(Expected … at ["PORT"])` without
 * the value. Built from the error's data (its schema issues, each with a path
 * and a message), not from its rendered text.
 *
 * @internal
 */
import { Config, Effect, Option, Schema, SchemaIssue } from "effect"
import { InvalidOption } from "./options.ts"

/** One thing a `ConfigError` says: the variable (the path joined with `_`, as the environment names it) and what was expected. */
interface Issue {
  readonly variable: string | undefined
  readonly expected: string
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

const lowerFirst = (text: string) => text.charAt(0).toLowerCase() + text.slice(1)

const issues = (error: Config.ConfigError): ReadonlyArray<Issue> => {
  const cause = error.cause
  if (!Schema.isSchemaError(cause)) return [{ variable: undefined, expected: cause.message }]
  return formatter(cause.issue).issues.map((issue) => ({
    variable: issue.path === undefined || issue.path.length === 0 ? undefined : issue.path.map(String).join("_"),
    expected: lowerFirst(issue.message)
  }))
}

/** The setting as `InvalidOption` says it; `value` undefined: not set. */
const toInvalid = (variable: string, expected: string, value: string | undefined): InvalidOption => {
  if (value === undefined) return new InvalidOption({ variable, value: "", reason: `not set: ${expected}` })
  // A message of our own (Options.Duration's) names the value already, for those who read it through Effect.
  const named = `${JSON.stringify(value)}: `
  return new InvalidOption({ variable, value, reason: expected.startsWith(named) ? expected.slice(named.length) : expected })
}

/**
 * The error in words, one part per issue; values are read from `env` (the
 * process environment, where `Config` reads them by default).
 *
 * @internal
 */
export const describeConfigError = (error: Config.ConfigError, env: Record<string, string | undefined> = process.env): string =>
  issues(error).map(({ expected, variable }) => {
    if (variable === undefined) return expected
    const value = env[variable]
    return value === undefined ? `${variable} is not set: ${expected}` : toInvalid(variable, expected, value).message
  }).join("; ")

/**
 * Reads `config`; a value it cannot use fails with `InvalidOption` — the
 * variable, the value the provider has for it (read through the same
 * provider), and what was expected — like every other setting of the
 * library, instead of Effect's `ConfigError`.
 *
 * @internal
 */
export const read = <A>(config: Config.Config<A>): Effect.Effect<A, InvalidOption> =>
  Effect.catch(config, (error: Config.ConfigError) =>
    Effect.gen(function*() {
      const [first] = issues(error)
      if (first === undefined || first.variable === undefined) {
        return yield* new InvalidOption({ variable: "configuration", value: "", reason: first?.expected ?? error.message })
      }
      const value = yield* Effect.orElseSucceed(Config.option(Config.String(first.variable)), () => Option.none<string>())
      return yield* toInvalid(first.variable, first.expected, Option.getOrUndefined(value))
    }))
