/**
 * Reads what a service started with LOG_FORMAT=json wrote: its log lines and
 * its shutdown report (one line per row, then a summary line), so that tests
 * assert on the report the operator reads, not on internals.
 */
export interface LogLine {
  readonly message: string
  readonly level: string
  readonly annotations: Readonly<Record<string, unknown>>
}

export interface Row {
  readonly name: string
  readonly kind: string
  readonly outcome: string
  readonly inFlightAtDrain: number | null
  readonly inFlightAtEnd: number | null
  readonly detail: string | null
}

export interface ShutdownReport {
  readonly reason: string
  readonly ending: string
  readonly exitCode: number
  readonly totalMillis: number
  readonly rows: ReadonlyArray<Row>
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null
const text = (value: unknown): string => typeof value === "string" ? value : JSON.stringify(value)
const numberOrNull = (value: unknown): number | null => typeof value === "number" ? value : null

const parse = (line: string): unknown => {
  try {
    return JSON.parse(line)
  } catch {
    return undefined
  }
}

/** The JSON log lines of `output`; anything else (a stack trace, a warning from Node) is skipped. */
export const logLines = (output: string): ReadonlyArray<LogLine> =>
  output.split("\n").flatMap((line) => {
    const value = parse(line)
    if (!isRecord(value)) return []
    return [{
      message: text(value["message"]),
      level: text(value["level"]),
      annotations: isRecord(value["annotations"]) ? value["annotations"] : {}
    }]
  })

/** The messages logged as warnings or errors. */
export const warnings = (output: string): ReadonlyArray<string> =>
  logLines(output).filter((line) => ["WARN", "ERROR", "FATAL"].includes(line.level)).map((line) => line.message)

/** The shutdown report; throws (with the output) if there is none. */
export const shutdownReport = (output: string): ShutdownReport => {
  const lines = logLines(output)
  const summary = lines.find((line) => line.message === "shutdown report")?.annotations
  if (summary === undefined) throw new Error(`no shutdown report in the output:\n${output}`)
  return {
    reason: text(summary["reason"]),
    ending: text(summary["ending"]),
    exitCode: numberOrNull(summary["exitCode"]) ?? -1,
    totalMillis: numberOrNull(summary["totalMillis"]) ?? -1,
    rows: lines.filter((line) => line.message === "shutdown report row").map(({ annotations: a }) => ({
      name: text(a["name"]),
      kind: text(a["kind"]),
      outcome: text(a["outcome"]),
      inFlightAtDrain: numberOrNull(a["inFlightAtDrain"]),
      inFlightAtEnd: numberOrNull(a["inFlightAtEnd"]),
      detail: typeof a["detail"] === "string" ? a["detail"] : null
    }))
  }
}

/** Each row as `name: outcome`, sorted: one readable value to compare with. */
export const outcomes = (report: ShutdownReport): ReadonlyArray<string> =>
  report.rows.map((row) => `${row.name}: ${row.outcome}`).sort()
