/**
 * The example service — the project's main job (`npm start`):
 *
 * - an Effect HTTP API (`Http.layer`) on PORT (8080): /work, /jobs, /jobs/stats,
 *   /readyz, /livez;
 * - an Express app (`Http.layerNode`) on WEB_PORT (8081);
 * - a gRPC service with health on GRPC_PORT (50051);
 * - a worker pool consuming a durable SQLite job queue (JOBS_DB, jobs.db);
 * - the database, closed after everything that uses it.
 *
 * Ctrl-C (SIGINT) or SIGTERM drains it and prints the shutdown report. Try:
 *
 *   curl 'localhost:8080/work?ms=5000' & sleep 1; kill -TERM <pid>
 *
 * Settings: PORT, WEB_PORT, GRPC_PORT, HEALTH_PORT (probes on a port of their
 * own), JOBS_DB, WORKERS, JOB_MS, DRAIN_DELAY, DRAIN_TIMEOUT, SHUTDOWN_TIMEOUT,
 * LOG_FORMAT=json.
 */
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import type { AddressInfo } from "node:net"
import * as Grpc from "../src/Grpc.ts"
import { Health, Main } from "../src/index.ts"
import { Api } from "./service/api.ts"
import { ServiceConfig } from "./service/config.ts"
import { Rpc } from "./service/grpc.ts"
import { Database, Workers } from "./service/jobs.ts"
import { Web, webServer } from "./service/web.ts"

const App = Layer.unwrap(Effect.gen(function*() {
  const config = yield* ServiceConfig
  const Probes = config.healthPort === undefined ? Layer.empty : Health.layer({ port: config.healthPort })
  return Layer.mergeAll(
    Api(config.port),
    Web(config.webPort),
    Rpc(config.grpcPort),
    Workers(config.workers, config.jobMillis),
    Probes
  ).pipe(
    // One line with the ports actually bound (PORT=0 picks free ones).
    Layer.tap((context) => {
      const api = Context.get(context, HttpServer.HttpServer).address
      const ports = [
        `api=${"port" in api ? api.port : api.path}`,
        `web=${(webServer.address() as AddressInfo).port}`,
        `grpc=${Context.get(context, Grpc.Server).port}`,
        ...(config.healthPort === undefined ? [] : [`health=${config.healthPort}`])
      ]
      return Effect.logInfo(`example service listening: ${ports.join(" ")} jobs=${config.database}`)
    }),
    Layer.provide(Database(config.database))
  )
}))

Main.runMain(App)
