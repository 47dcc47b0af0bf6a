/**
 * Readiness and liveness driven by the quit event, for load balancers and
 * Kubernetes probes.
 *
 * - **Readiness** answers 200 only while the phase is `running`: 503 while the
 *   program starts, and from the moment the quit event fires — through the
 *   drain delay, while requests are still served — so that traffic moves
 *   elsewhere before any listener closes.
 * - **Liveness** answers 200 for as long as the process answers at all: a
 *   draining process is alive, and restarting it would cut its drain short.
 *
 * Serve them on an HTTP server of the program (`health` option of the `Http`
 * layers), on a port of their own with {@link layer} (which stays open until
 * the shutdown ends), or from any Node framework with {@link handler}.
 * Bodies say `ready`, `not ready` or `alive`, nothing more.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Stream } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"
import { current, type QuitImpl } from "./internal/core/quit.ts"
import { type BindError, describeAddress, listen } from "./internal/http/listen.ts"
import * as Quit from "./Quit.ts"

/**
 * Where the probes are answered. Defaults: `/readyz` and `/livez`.
 *
 * @since 0.1.0
 */
export interface Paths {
  readonly readinessPath?: string | undefined
  readonly livenessPath?: string | undefined
}

/**
 * A Node request handler for the probes: answers a probe and returns `true`,
 * or returns `false` and leaves the request alone. It takes the requests and
 * responses of `node:http`, `node:https` and `node:http2` alike.
 *
 * @since 0.1.0
 */
export type Handler = (request: Probe, response: Reply) => boolean

/**
 * What the probes read of a request.
 *
 * @since 0.1.0
 */
export interface Probe {
  readonly method?: string | undefined
  readonly url?: string | undefined
}

/**
 * What the probes write to a response.
 *
 * @since 0.1.0
 */
export interface Reply {
  statusCode: number
  setHeader(name: string, value: string | number): unknown
  end(body: string): unknown
}

/**
 * Whether the program is ready for traffic: the phase is `running`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Health } from "effect-graceful"
 * const logReadiness = Effect.flatMap(Health.isReady, (ready) => Effect.log(`ready: ${ready}`))
 * ```
 * @since 0.1.0
 */
export const isReady: Effect.Effect<boolean, never, Quit.Quit> = Effect.map(Quit.phase, (change) => change.phase === "running")

const answer = (response: Reply, method: string | undefined, status: number, body: string) => {
  const head = method === "HEAD"
  if (!head && method !== "GET") {
    response.statusCode = 405
    response.setHeader("allow", "GET, HEAD")
    response.setHeader("content-length", 0)
    response.end("")
    return
  }
  response.statusCode = status
  response.setHeader("content-type", "text/plain; charset=utf-8")
  response.setHeader("content-length", Buffer.byteLength(body))
  response.setHeader("cache-control", "no-store")
  response.end(head ? "" : body)
}

/** @internal */
export const makeHandler = (quit: QuitImpl, paths: Paths = {}): Handler => {
  const readiness = paths.readinessPath ?? "/readyz"
  const liveness = paths.livenessPath ?? "/livez"
  return (request, response) => {
    const url = request.url ?? "/"
    const query = url.indexOf("?")
    const path = query === -1 ? url : url.slice(0, query)
    if (path === readiness) {
      const ready = quit.phase.phase === "running"
      answer(response, request.method, ready ? 200 : 503, ready ? "ready\n" : "not ready\n")
      return true
    }
    if (path === liveness) {
      answer(response, request.method, 200, "alive\n")
      return true
    }
    return false
  }
}

/**
 * The probes as a plain Node handler, for a server or framework of your own.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { createServer } from "node:http"
 * import { Health } from "effect-graceful"
 * const program = Effect.gen(function*() {
 *   const probes = yield* Health.handler({ readinessPath: "/ready" })
 *   const server = createServer((req, res) => probes(req, res) || res.end("app"))
 * })
 * ```
 * @since 0.1.0
 */
export const handler = (paths: Paths = {}): Effect.Effect<Handler, never, Quit.Quit> =>
  Effect.map(current, (quit) => makeHandler(quit, paths))

/**
 * Options of the standalone health server: where it listens, and its paths.
 *
 * @since 0.1.0
 */
export interface Options extends Paths, Net.ListenOptions {}

/**
 * The server of {@link layer}: where it listens (with `port: 0`, the port
 * the system picked).
 *
 * @since 0.1.0
 */
export class Server extends Context.Service<Server, {
  readonly port: number
  readonly host: string
}>()("effect-graceful/Health/Server") {}

/**
 * The probes on a port of their own (Lightship's and Spring's management
 * port). Other paths answer 404. Unlike the program's servers, this one stays
 * open through the whole shutdown — liveness keeps answering 200 while
 * everything else drains — and closes when the shutdown has ended (phase
 * `stopped`), or with its scope if the quit event never fired. Provides
 * {@link Server}, its bound address. Fails with `Http.BindError` when it
 * cannot listen.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { createServer } from "node:http"
 * import { Health, Http, Main } from "effect-graceful"
 * const Api = Http.layerNode(() => createServer((_req, res) => res.end("hello")), { port: 8080 })
 * Main.runMain(Layer.mergeAll(Api, Health.layer({ port: 9000 })), { drainDelay: "5 seconds" })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Server, BindError, Quit.Quit> =>
  Layer.effect(Server, Effect.gen(function*() {
    const quit = yield* current
    const { livenessPath, readinessPath, ...listenOptions } = options
    const probes = makeHandler(quit, { livenessPath, readinessPath })
    const server = Http.createServer((request, response) => {
      if (!probes(request, response)) response.writeHead(404, { "content-length": 0 }).end()
    })
    const close = Effect.sync(() => {
      server.close()
      server.closeAllConnections()
    })
    yield* Effect.acquireRelease(listen(server, listenOptions), () =>
      quit.hasFired()
        ? quit.phases.pipe(
          Stream.filter((change) => change.phase === "stopped"),
          Stream.take(1),
          Stream.runDrain,
          Effect.andThen(close),
          Effect.forkDetach,
          Effect.asVoid
        )
        : close)
    yield* Effect.logInfo(`health listening on ${describeAddress(server, "http")}`)
    const address = server.address() as Net.AddressInfo
    return { port: address.port, host: address.address }
  }))
