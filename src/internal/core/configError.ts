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

/**
 * Reads the values from `env` (the process environment, where `Config` reads
 * them by default: the path's segments joined with `_`).
 *
 * @internal
 */
export const describeConfigError = (error: Config.ConfigError, env: Record<string, string | undefined> = process.env): string => {
  const text = error.cause.message
  const issues = [...text.matchAll(ISSUE)]
  if (issues.length === 0) return text
  return issues.map(([, expected, at]) => {
    let path: unknown
    try {
      path = JSON.parse(at!)
    } catch {
      return `${expected} at ${at}`
    }
    if (!Array.isArray(path)) return `${expected} at ${at}`
    const name = path.join("_")
    const value = env[name]
    const what = expected!.charAt(0).toLowerCase() + expected!.slice(1)
    if (value !== undefined && what.startsWith(`${JSON.stringify(value)}: `)) {
      return `${name}=${what}`
    }
    return value === undefined ? `${name} is not set: ${what}` : `${name}=${JSON.stringify(value)}: ${what}`
  }).join("; ")
}

/**
 * Reads `config`; a value it cannot use fails with `InvalidOption` — the
 * variable (the path's segments joined with `_`, as the environment names
 * it), the value the provider has for it, and what was expected — like every
 * other setting of the library, instead of Effect's `ConfigError`.
 *
 * @internal
 */
export const read = <A>(config: Config.Config<A>): Effect.Effect<A, InvalidOption> =>
  Effect.catch(config, (error: Config.ConfigError) => Effect.flatMap(invalid(error), Effect.fail))

const invalid = (error: Config.ConfigError): Effect.Effect<InvalidOption> =>
  Effect.gen(function*() {
    const text = error.cause.message
    const [issue] = [...text.matchAll(ISSUE)]
    const path = issue === undefined ? undefined : parsePath(issue[2]!)
    if (issue === undefined || path === undefined) return new InvalidOption({ variable: "configuration", value: "", reason: text })
    const variable = path.join("_")
    const raw: Option.Option<string> = path.length === 1
      ? yield* Effect.orElseSucceed(Config.option(Config.String(variable)), () => Option.none<string>())
      : Option.none()
    const value = Option.getOrUndefined(raw)
    const expected = issue[1]!.charAt(0).toLowerCase() + issue[1]!.slice(1)
    if (value === undefined) return new InvalidOption({ variable, value: "", reason: `not set: ${expected}` })
    const prefix = `${JSON.stringify(value)}: `
    return new InvalidOption({ variable, value, reason: expected.startsWith(prefix) ? expected.slice(prefix.length) : expected })
  })

const parsePath = (text: string): ReadonlyArray<string | number> | undefined => {
  try {
    const path: unknown = JSON.parse(text)
    return Array.isArray(path) ? path as ReadonlyArray<string | number> : undefined
  } catch {
    return undefined
  }
}
