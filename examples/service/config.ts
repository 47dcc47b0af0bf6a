/**
 * The example service's settings, from the environment through Effect's
 * `Config`. The shutdown timing (DRAIN_DELAY, DRAIN_TIMEOUT, SHUTDOWN_TIMEOUT)
 * is read by `Main.runMain` itself.
 */
import { Config, Duration, Option, Schema } from "effect"
import { Options } from "../../src/index.ts"

/** A port; 0 asks the system for a free one. */
const port = (name: string, fallback: number) => Config.schema(Schema.Port, name).pipe(Config.withDefault(fallback))

export const ServiceConfig = Config.all({
  /** The Effect HTTP API: /work, /jobs, /jobs/stats, /readyz, /livez. */
  port: port("PORT", 8080),
  /** The Express app: /hello, /work. */
  webPort: port("WEB_PORT", 8081),
  grpcPort: port("GRPC_PORT", 50051),
  /** The address every server binds; default: all interfaces. */
  host: Config.String("HOST").pipe(Config.option, Config.map(Option.getOrUndefined)),
  /**
   * Listen with SO_REUSEPORT (Linux): the next instance may listen on the same
   * ports before this one leaves — a handoff (examples/handoff.ts).
   */
  reusePort: Config.Boolean("REUSE_PORT").pipe(Config.withDefault(false)),
  /** Readiness and liveness on a port of their own as well, when set. */
  healthPort: Config.schema(Schema.Port, "HEALTH_PORT").pipe(Config.option, Config.map(Option.getOrUndefined)),
  /** The job queue: a SQLite file, or a postgres:// URL (PostgreSQL, shared by many machines). */
  database: Config.String("JOBS_DB").pipe(Config.withDefault("jobs.db")),
  /** How long a job's claim outlives a process killed with SIGKILL (renewed while it lives). */
  jobsLease: Options.Duration("JOBS_LEASE").pipe(Config.withDefault(Duration.seconds(30))),
  workers: Config.schema(Schema.Int.check(Schema.isGreaterThan(0)), "WORKERS").pipe(Config.withDefault(4)),
  /** How long one job takes to process, in milliseconds. */
  jobMillis: Config.schema(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), "JOB_MS").pipe(Config.withDefault(20))
})

export type ServiceConfig = Config.Success<typeof ServiceConfig>
