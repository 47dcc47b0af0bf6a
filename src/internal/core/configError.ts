/**
 * A `Config` error in an operator's words: the variable, the value it has,
 * and what was expected — `PORT="abc": expected a port number` — where
 * Effect's own message says `SchemaError(Expected … at ["PORT"])` without
 * the value.
 *
 * @internal
 */
import type { Config } from "effect"

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
