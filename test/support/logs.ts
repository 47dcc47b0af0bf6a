/**
 * A logger that keeps what was logged, so tests can assert on the names and
 * causes that logs must carry.
 */
import { Cause, Effect, Logger } from "effect"

export interface Captured {
  readonly level: string
  readonly text: string
  readonly cause: string
}

export const captureLogs = () => {
  const logs: Array<Captured> = []
  const logger = Logger.make((options) => {
    const parts = Array.isArray(options.message) ? options.message : [options.message]
    logs.push({
      level: options.logLevel,
      text: parts.map((part) => typeof part === "string" ? part : JSON.stringify(part)).join(" "),
      cause: options.cause.reasons.length > 0 ? Cause.pretty(options.cause) : ""
    })
  })
  const provide = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.provideService(effect, Logger.CurrentLoggers, new Set([logger]))
  return { logs, provide }
}
