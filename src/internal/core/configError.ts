/**
 * A `Config` error in an operator's words: the variable, the value it has,
 * and what was expected — `PORT="abc": expected a port number` — where
 * Effect's own message says `SchemaError(Expected … at ["PORT"])` without
 * the value.
 *
 * @internal
 */
import { Config, Effect, Option } from "effect"
import { InvalidOption } from "./options.ts"

const ISSUE = /([^\n]+)\n\s+at (\[[^\n]*\])/g

/** One thing a `ConfigError` says: the variable (the path's segments joined with `_`, as the environment names it) and what was expected. */
interface Issue {
  readonly variable: string | undefined
  readonly expected: string
  /** As Effect words it, for an issue without a readable path. */
  readonly text: string
}

const issues = (error: Config.ConfigError): ReadonlyArray<Issue> => {
  const text = error.cause.message
  const found = [...text.matchAll(ISSUE)].map(([, expected, at]): Issue => {
    const path = parsePath(at!)
    return {
      variable: path?.join("_"),
      expected: expected!.charAt(0).toLowerCase() + expected!.slice(1),
      text: `${expected} at ${at}`
    }
  })
  return found.length === 0 ? [{ variable: undefined, expected: text, text }] : found
}

/** The setting as `InvalidOption` says it; `value` undefined: not set. */
const toInvalid = (variable: string, expected: string, value: string | undefined): InvalidOption => {
  if (value === undefined) return new InvalidOption({ variable, value: "", reason: `not set: ${expected}` })
  // Effect's message may start with the value already.
  const prefix = `${JSON.stringify(value)}: `
  return new InvalidOption({ variable, value, reason: expected.startsWith(prefix) ? expected.slice(prefix.length) : expected })
}

/**
 * Reads the values from `env` (the process environment, where `Config` reads
 * them by default).
 *
 * @internal
 */
export const describeConfigError = (error: Config.ConfigError, env: Record<string, string | undefined> = process.env): string =>
  issues(error).map(({ expected, text, variable }) => {
    if (variable === undefined) return text
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
      const [{ expected, variable }] = issues(error) as [Issue]
      if (variable === undefined) return yield* new InvalidOption({ variable: "configuration", value: "", reason: expected })
      const value = yield* Effect.orElseSucceed(Config.option(Config.String(variable)), () => Option.none<string>())
      return yield* toInvalid(variable, expected, Option.getOrUndefined(value))
    }))

const parsePath = (text: string): ReadonlyArray<string | number> | undefined => {
  try {
    const path: unknown = JSON.parse(text)
    return Array.isArray(path) ? path as ReadonlyArray<string | number> : undefined
  } catch {
    return undefined
  }
}
