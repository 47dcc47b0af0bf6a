/**
 * Preloaded into every exit-benchmark server (`--import`): when the process
 * begins to exit — Node's `exit` event, at `process.exit` or when the event
 * loop empties — writes `EXITING <ns>` to stderr, read on the monotonic clock
 * that every process on the machine shares. The bench tells by it the
 * library's own time to the exit from the process's teardown after it.
 */
import { writeSync } from "node:fs"

process.on("exit", () => writeSync(2, `EXITING ${process.hrtime.bigint()}\n`))
