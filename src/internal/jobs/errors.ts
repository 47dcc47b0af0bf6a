/**
 * The job queue's error, and what a store failure was, in words: the error
 * SQLite or PostgreSQL gave (a full disk, a lock held by another process, a
 * lost connection), not the wrapper that carried it.
 *
 * @internal
 */
import { Data } from "effect"
import { isSqlError } from "effect/sql/SqlError"

/** Documented on the public `JobQueue` module. @internal */
export class JobQueueError extends Data.TaggedError("JobQueueError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `job queue: ${this.operation} failed: ${describe(this.cause)}`
  }
}

// SQLite's primary result codes (the low byte of an extended code) and PostgreSQL's SQLSTATEs, in words.
const sqliteCodes: Record<number, string> = {
  5: "the database is locked by another connection (SQLITE_BUSY)",
  6: "a table is locked (SQLITE_LOCKED)",
  8: "the database is read-only (SQLITE_READONLY)",
  10: "a disk I/O error (SQLITE_IOERR)",
  11: "the database file is corrupt (SQLITE_CORRUPT)",
  13: "the disk is full (SQLITE_FULL)",
  14: "the database file cannot be opened (SQLITE_CANTOPEN)",
  26: "the file is not a database (SQLITE_NOTADB)"
}
const pgCodes: Record<string, string> = {
  "53100": "the disk is full (53100 disk_full)",
  "53200": "the server is out of memory (53200 out_of_memory)",
  "53300": "the server has too many connections (53300 too_many_connections)",
  "57P01": "the server is shutting down (57P01 admin_shutdown)",
  "57P03": "the server cannot connect now (57P03 cannot_connect_now)",
  "40001": "a serialization failure (40001)",
  "40P01": "a deadlock (40P01)",
  "55P03": "a lock is not available (55P03 lock_not_available)"
}

/** The driver's own error inside a `SqlError` (or the value itself). */
const native = (cause: unknown): unknown => {
  let current = cause
  for (let depth = 0; depth < 4 && isSqlError(current); depth++) current = current.reason.cause
  return current
}

const field = (value: unknown, name: string): unknown =>
  typeof value === "object" && value !== null && name in value ? (value as Record<string, unknown>)[name] : undefined

/** The SQLite result code or PostgreSQL SQLSTATE of a store failure, if it has one. */
export const code = (cause: unknown): number | string | undefined => {
  const error = native(cause)
  // node:sqlite's errors carry `errcode`; PostgreSQL's their SQLSTATE in `code` (Node's own, such as EPIPE, do not match).
  const errcode = field(error, "errcode")
  if (typeof errcode === "number") return errcode & 0xff
  const sqlstate = field(error, "code")
  return typeof sqlstate === "string" && /^([0-9][0-9A-Z]|F0|HV|P0|XX)[0-9A-Z]{3}$/.test(sqlstate) ? sqlstate : undefined
}

/** A failure in words: "the disk is full (SQLITE_FULL): database or disk is full". */
export const describe = (cause: unknown): string => {
  const error = native(cause)
  const text = error instanceof Error ? error.message : isSqlError(cause) ? cause.message : String(error)
  const found = code(cause)
  const words = typeof found === "number" ? sqliteCodes[found] : found === undefined ? undefined : pgCodes[found]
  if (words !== undefined) return `${words}: ${text}`
  // A connection the server or the network closed has no SQLSTATE; its reason says so.
  if (isSqlError(cause) && cause.reason._tag === "ConnectionError") return `the connection failed: ${text}`
  return text
}

/**
 * A failure that may pass: a lock held by another process, a full disk, a
 * lost connection, a deadlock or serialization failure, a server restarting.
 * Not a constraint, a syntax error, or a failure of the user's own code.
 */
export const isTransient = (cause: unknown): boolean => {
  const found = code(cause)
  if (found === 5 || found === 6 || found === 10 || found === 13) return true
  if (typeof found === "string" && (found.startsWith("08") || found.startsWith("53") || found.startsWith("57P") ||
    found === "40001" || found === "40P01" || found === "55P03")) return true
  if (!isSqlError(cause)) return false
  const tag = cause.reason._tag
  return tag === "ConnectionError" || tag === "LockTimeoutError" || tag === "DeadlockError" ||
    tag === "SerializationError" || tag === "StatementTimeoutError"
}
