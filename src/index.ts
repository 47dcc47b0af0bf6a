/**
 * effect-graceful: graceful shutdown and structured concurrency for Node
 * services, built on Effect. Each module is a namespace:
 *
 * - `Quit` — the quit event, in-flight groups, closers.
 * - `Worker` — loops and consumers as fibers that finish their current unit.
 * - `Closer` — any close/end/destroy as a named scoped resource with a timeout.
 * - `JobQueue` — a durable job queue on SQLite that loses nothing.
 * - `Main` — the process runner (`Main.runMain`).
 * - `Shutdown` — the shutdown sequence as an Effect.
 * - `Options` — drain delay, drain timeout, shutdown timeout from code and env.
 * - `Report` — the shutdown report.
 *
 * @since 0.1.0
 */
export * as Closer from "./Closer.ts"
export * as JobQueue from "./JobQueue.ts"
export * as Main from "./Main.ts"
export * as Options from "./Options.ts"
export * as Quit from "./Quit.ts"
export * as Report from "./Report.ts"
export * as Shutdown from "./Shutdown.ts"
export * as Worker from "./Worker.ts"
