/**
 * The example service — the project's main job (`npm start`):
 *
 * - an Effect HTTP API (`Http.layer`) on PORT (8080): /work, /jobs, /jobs/stats,
 *   /readyz, /livez;
 * - an Express app (`Http.layerNode`) on WEB_PORT (8081);
 * - a gRPC service with health on GRPC_PORT (50051);
 * - a worker pool consuming a durable job queue (JOBS_DB: a SQLite file, jobs.db
 *   by default, or a postgres:// URL to share it between machines);
 * - the database, closed after everything that uses it.
 *
 * Ctrl-C (SIGINT) or SIGTERM drains it and prints the shutdown report. Try:
 *
 *   curl 'localhost:8080/work?ms=5000' & sleep 1; kill -TERM <pid>
 *
 * Settings: PORT, WEB_PORT, GRPC_PORT, HOST, REUSE_PORT (SO_REUSEPORT, for a
 * handoff: examples/handoff.ts), HEALTH_PORT (probes and Prometheus /metrics
 * on a port of their own), JOBS_DB, JOBS_LEASE, WORKERS, JOB_MS, DRAIN_DELAY,
 * DRAIN_TIMEOUT, SHUTDOWN_TIMEOUT, PROGRESS_INTERVAL (the shutdown's progress
 * line, every 1 s by default; 0: off), LOG_FORMAT=json.
 */
import { Main } from "../src/index.ts"
import { App } from "./service/app.ts"

Main.runMain(App)
