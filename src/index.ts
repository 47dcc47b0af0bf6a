/**
 * effect-graceful: graceful shutdown and structured concurrency for Node
 * services, built on Effect. Each module is a namespace:
 *
 * - `Quit` — the quit event, in-flight groups, closers.
 * - `Main` — the process runner (`Main.runMain`).
 * - `Shutdown` — the shutdown sequence as an Effect.
 * - `Options` — drain delay, drain timeout, shutdown timeout from code and env.
 * - `Report` — the shutdown report.
 *
 * @since 0.1.0
 */
export * as Main from "./Main.ts"
export * as Options from "./Options.ts"
export * as Quit from "./Quit.ts"
export * as Report from "./Report.ts"
export * as Shutdown from "./Shutdown.ts"
