/**
 * effect-graceful: graceful shutdown and structured concurrency for Node
 * services, built on Effect. Each module is a namespace:
 *
 * - `Quit` — the quit event and its deadlines, in-flight groups, closers; `Quit.layer` for any runner.
 * - `Worker` — loops and consumers as fibers that finish their current unit.
 * - `Closer` — any close/end/destroy as a named scoped resource with a timeout.
 * - `JobQueue` — a durable job queue on SQLite that loses nothing.
 * - `Http` — graceful HTTP/1.1 and HTTP/2 servers for Effect apps and plain Node handlers.
 * - `Health` — readiness and liveness driven by the quit event.
 * - `Main` — the process runner (`Main.runMain`).
 * - `Shutdown` — the shutdown sequence as an Effect.
 * - `Memory` — memory pressure: the quit event fires before the OOM killer.
 * - `Options` — drain delay, drain, close and shutdown timeouts from code and env; the budget rule.
 * - `Platform` — the platforms' stop contracts (Cloud Run, ECS, Fly.io, Heroku, Nomad, Kubernetes) as presets.
 * - `Report` — the shutdown report.
 * - `Systemd` — systemd's notifications (READY, STOPPING, STATUS, the watchdog) and socket activation.
 *
 * gRPC lives at `effect-graceful/Grpc`, so that programs without gRPC need not
 * install its optional peer dependencies.
 *
 * @since 0.1.0
 */
export * as Closer from "./Closer.ts"
export * as Health from "./Health.ts"
export * as Http from "./Http.ts"
export * as JobQueue from "./JobQueue.ts"
export * as Main from "./Main.ts"
export * as Memory from "./Memory.ts"
export * as Options from "./Options.ts"
export * as Platform from "./Platform.ts"
export * as Quit from "./Quit.ts"
export * as Report from "./Report.ts"
export * as Shutdown from "./Shutdown.ts"
export * as Systemd from "./Systemd.ts"
export * as Worker from "./Worker.ts"
