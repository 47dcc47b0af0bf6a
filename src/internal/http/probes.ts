/**
 * The probes' answers: readiness from the phase, the program's mark and its
 * checks; liveness; the metrics in the Prometheus text format. Shared by the
 * health server, the `health` option of the HTTP layers and `Health.handler`.
 *
 * @internal
 */
import { Effect } from "effect"
import type { PrometheusMetrics } from "effect/observability"
import type { QuitImpl } from "../core/quit.ts"
import type { Verdict } from "../core/readiness.ts"

/**
 * Where the probes are answered (defaults: `/readyz` and `/livez`), and
 * whether a not-ready body names why (`detail`, default `false`: a readiness
 * endpoint is often reachable from outside, and says nothing internal).
 *
 * @internal
 */
export interface ProbeOptions {
  readonly readinessPath?: string | undefined
  readonly livenessPath?: string | undefined
  /** A 503 body lists the reasons, one per line: `db: timed out after 500ms`. */
  readonly detail?: boolean | undefined
  /**
   * Serve the metrics in the Prometheus text format (through Effect's
   * `PrometheusMetrics`): `true` at `/metrics`, or at the path given. Off by
   * default. The library's series are there with the program's own:
   * `effect_graceful_in_flight`, `_units_started_total` and `_units_cut_total`
   * per group, `effect_graceful_phase`, `_since_quit_seconds`,
   * `_shutdown_duration_seconds`, the workers' and gRPC servers' series.
   */
  readonly metrics?: boolean | string | undefined
}

/**
 * A Node request handler for the probes: answers a probe and returns `true`
 * (with readiness checks registered, the answer follows once they have run),
 * or returns `false` and leaves the request alone. It takes the requests and
 * responses of `node:http`, `node:https` and `node:http2` alike.
 *
 * @internal
 */
export type Handler = (request: Probe, response: Reply) => boolean

/**
 * What the probes read of a request.
 *
 * @internal
 */
export interface Probe {
  readonly method?: string | undefined
  readonly url?: string | undefined
  /** Who probes (a balancer's address and user agent): for an automatic drain delay. */
  readonly headers?: { readonly "user-agent"?: string | undefined } | undefined
  readonly socket?: { readonly remoteAddress?: string | undefined } | null | undefined
}

/** Who sent a probe: its address and user agent (a balancer probes from one address, with one agent). @internal */
export const proberOf = (request: Probe): string => {
  const agent = request.headers?.["user-agent"]
  // An IPv4 client of a dual-stack listener is `::ffff:10.0.0.5`: one prober, whichever way it came.
  const address = (request.socket?.remoteAddress ?? "unknown address").replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1")
  return agent === undefined || agent === "" ? address : `${address} "${agent.length > 60 ? agent.slice(0, 60) : agent}"`
}

/**
 * What the probes write to a response.
 *
 * @internal
 */
export interface Reply {
  statusCode: number
  setHeader(name: string, value: string | number): unknown
  end(body: string): unknown
}

/**
 * Why the program is not ready, as far as it is known without running the
 * checks; `undefined` when only the checks can say.
 *
 * @internal
 */
export const known = (quit: QuitImpl): Verdict | undefined => {
  const phase = quit.phase.phase
  if (phase !== "running") return [phase === "starting" ? "starting" : "shutting down"]
  const mark = quit.readiness.mark
  if (mark !== undefined) return [`marked not ready: ${mark}`]
  return quit.readiness.hasChecks ? undefined : []
}

/** The checks' verdict, with what happened meanwhile (the quit event fired). @internal */
export const verdict = (quit: QuitImpl, checks: Verdict): Verdict => known(quit) ?? checks

const TEXT = "text/plain; charset=utf-8"
const PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"

const answer = (response: Reply, method: string | undefined, status: number, body: string, contentType = TEXT) => {
  const head = method === "HEAD"
  if (!head && method !== "GET") {
    response.statusCode = 405
    response.setHeader("allow", "GET, HEAD")
    response.setHeader("content-length", 0)
    response.end("")
    return
  }
  response.statusCode = status
  response.setHeader("content-type", contentType)
  response.setHeader("content-length", Buffer.byteLength(body))
  response.setHeader("cache-control", "no-store")
  response.end(head ? "" : body)
}

const notReady = (reasons: Verdict, detail: boolean) => detail ? `not ready\n${reasons.map((reason) => `${reason}\n`).join("")}` : "not ready\n"

/**
 * The probes' handler. `effect/observability` (it loads Effect's HTTP client
 * for OTLP) is imported only when the metrics are served: a program starts
 * without it otherwise.
 *
 * @internal
 */
export const makeHandler = (quit: QuitImpl, options: ProbeOptions = {}): Effect.Effect<Handler> =>
  options.metrics === undefined || options.metrics === false
    ? Effect.sync(() => handlerWith(quit, options, undefined))
    : Effect.map(
      Effect.promise(() => import("effect/observability")),
      ({ PrometheusMetrics }) => handlerWith(quit, options, PrometheusMetrics)
    )

const handlerWith = (quit: QuitImpl, options: ProbeOptions, prometheus: typeof PrometheusMetrics | undefined): Handler => {
  const readiness = options.readinessPath ?? "/readyz"
  const liveness = options.livenessPath ?? "/livez"
  const detail = options.detail === true
  const metrics = options.metrics === true ? "/metrics" : typeof options.metrics === "string" ? options.metrics : undefined
  // `prober` is read when the probe arrives: once answered, a prober may reset
  // the connection at once (seen behind HAProxy's checks), and the socket then has no peer address.
  const reply = (request: Probe, response: Reply, prober: string, reasons: Verdict) => {
    if (reasons.length === 0) answer(response, request.method, 200, "ready\n")
    else answer(response, request.method, 503, notReady(reasons, detail))
    quit.routing.probe(prober, reasons.length === 0, quit.now())
  }
  return (request, response) => {
    const url = request.url ?? "/"
    const query = url.indexOf("?")
    const path = query === -1 ? url : url.slice(0, query)
    if (path === readiness) {
      const now = known(quit)
      const prober = proberOf(request)
      // With checks to run, the answer comes when they have.
      if (now === undefined) quit.readiness.evaluateThen((checks) => reply(request, response, prober, verdict(quit, checks)))
      else reply(request, response, prober, now)
      return true
    }
    if (path === liveness) {
      answer(response, request.method, 200, "alive\n")
      return true
    }
    if (path === metrics && prometheus !== undefined) {
      answer(response, request.method, 200, prometheus.formatUnsafe(quit.context), PROMETHEUS)
      return true
    }
    return false
  }
}

