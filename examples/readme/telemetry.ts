import { Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { createServer } from "node:http"
import { Health, Http, Main } from "effect-graceful"

const Web = Http.layerNode(() => createServer((_req, res) => res.end("hello")), { port: 8080 })

// Probes and /metrics (the Prometheus text format) on a port of their own.
const Probes = Health.layer({ port: 9000, metrics: true })

// Spans — the shutdown's among them — to an OpenTelemetry collector, flushed before the exit.
const Telemetry = OtlpTracer.layer({ url: "http://localhost:4318/v1/traces", resource: { serviceName: "web" } }).pipe(
  Layer.provide([FetchHttpClient.layer, OtlpSerialization.layerJson])
)

Main.runMain(Layer.mergeAll(Web, Probes), { telemetry: Telemetry })
