/**
 * The example service as one layer: the Effect API, the Express app, the gRPC
 * service, the job pool and, when HEALTH_PORT is set, probes and /metrics on
 * a port of their own — all on the job queue's database, which closes after them. It
 * logs the ports it bound in one line once everything listens.
 *
 * `examples/main.ts` runs it; the reliability suite composes it with fault
 * layers (test/reliability/fixtures/service.ts).
 */
import { Context, Effect, Layer, Option } from "effect"
import { HttpServer } from "effect/http"
import type { AddressInfo } from "node:net"
import * as Grpc from "../../src/Grpc.ts"
import { Health } from "../../src/index.ts"
import { Api } from "./api.ts"
import { ServiceConfig } from "./config.ts"
import { Rpc } from "./grpc.ts"
import { Database, Workers } from "./jobs.ts"
import { listeningLine } from "./ports.ts"
import { Web, webServer } from "./web.ts"

/** A postgres:// URL's password is not for logs. */
const withoutPassword = (database: string) => database.replace(/^(postgres(?:ql)?:\/\/[^:@/]+):[^@/]*@/i, "$1:***@")

export const App = Layer.unwrap(Effect.gen(function*() {
  const config = yield* ServiceConfig
  // The probes and /metrics (Prometheus) on a port of their own.
  const Probes = config.healthPort === undefined
    ? Layer.empty
    : Health.layer({ port: config.healthPort, ...(config.host === undefined ? {} : { host: config.host }), metrics: true })
  return Layer.mergeAll(
    Api(config.port, config.host, config.reusePort),
    Web(config.webPort, config.host, config.reusePort),
    Rpc(config.grpcPort, config.host, config.reusePort),
    Workers(config.workers, config.jobMillis),
    Probes
  ).pipe(
    // One line with the ports actually bound (PORT=0 picks free ones).
    Layer.tap((context) => {
      const api = Context.get(context, HttpServer.HttpServer).address
      const ports = {
        api: "port" in api ? api.port : Number.NaN,
        web: (webServer.address() as AddressInfo).port,
        grpc: Context.get(context, Grpc.Server).port
      }
      const probes = Context.getOption(context, Health.Server)
      const extra = [...Option.match(probes, { onNone: () => [], onSome: ({ port }) => [`health=${port}`] }), `jobs=${withoutPassword(config.database)}`]
      return Effect.logInfo(listeningLine(ports, extra))
    }),
    Layer.provide(Database(config.database, config.jobsLease))
  )
}))
