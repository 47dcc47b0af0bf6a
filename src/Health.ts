/**
 * Readiness and liveness driven by the quit event, for load balancers and
 * Kubernetes probes.
 *
 * - **Readiness** answers 200 only while the phase is `running`, every
 *   readiness {@link check} passes (is the database reachable) and the program
 *   has not marked itself not ready ({@link markNotReady}): 503 while the
 *   program starts, and from the moment the quit event fires — through the
 *   drain delay, while requests are still served — so that traffic moves
 *   elsewhere before any listener closes.
 * - **Liveness** answers 200 for as long as the process answers at all: a
 *   draining process is alive, and restarting it would cut its drain short.
 *
 * Serve them on an HTTP server of the program (`health` option of the `Http`
 * layers), on a port of their own with {@link layer} (which stays open until
 * the shutdown ends), or from any Node framework with {@link handler}.
 * Bodies say `ready`, `not ready` or `alive`, nothing more — unless the
 * `detail` option asks a not-ready body to name why, for operators.
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"
import { durationOr, type DurationInput, InvalidOption } from "./internal/core/options.ts"
import { current } from "./internal/core/quit.ts"
import * as probes from "./internal/http/probes.ts"
import { type BindError, describeAddress, listen } from "./internal/http/listen.ts"
import * as Quit from "./Quit.ts"

/**
 * Where the probes are answered (defaults: `/readyz` and `/livez`), and
 * whether a not-ready body names why (`detail`, default `false`: a readiness
 * endpoint is often reachable from outside, and says nothing internal).
 *
 * @category models
 * @since 0.1.0
 */
export type ProbeOptions = probes.ProbeOptions

/**
 * A Node request handler for the probes: answers a probe and returns `true`
 * (with readiness checks registered, the answer follows once they have run),
 * or returns `false` and leaves the request alone. It takes the requests and
 * responses of `node:http`, `node:https` and `node:http2` alike.
 *
 * @category models
 * @since 0.1.0
 */
export type Handler = probes.Handler

/**
 * What the probes read of a request.
 *
 * @category models
 * @since 0.1.0
 */
export type Probe = probes.Probe

/**
 * What the probes write to a response.
 *
 * @category models
 * @since 0.1.0
 */
export type Reply = probes.Reply

/**
 * Whether the program is ready for traffic: the phase is `running`, it is not
 * marked not ready, and every readiness check passes (they run now).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Health } from "effect-graceful"
 * const logReadiness = Effect.flatMap(Health.isReady, (ready) => Effect.log(`ready: ${ready}`))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const isReady: Effect.Effect<boolean, never, Quit.Quit> = Effect.flatMap(current, (quit) => {
  const now = probes.known(quit)
  if (now !== undefined) return Effect.succeed(now.length === 0)
  return Effect.map(quit.readiness.evaluate, (checks) => probes.verdict(quit, checks).length === 0)
})

/**
 * Options of a readiness check: how long it may take before it counts as
 * failing (default 500 ms, under the 1 s a Kubernetes probe waits by default).
 *
 * @category models
 * @since 0.1.0
 */
export interface CheckOptions {
  readonly timeout?: DurationInput | undefined
}

const CHECK_TIMEOUT = Duration.millis(500)

/**
 * Adds a readiness check for as long as the current scope is open (use it in
 * a layer, beside the resource it checks). Readiness is 503 while it fails.
 * Checks run when readiness is asked, all at once; probes that ask meanwhile
 * share that run. A check that fails, dies (throws) or outlives its timeout
 * counts as failing — the hung one is cut and left behind — and the log says
 * so when its state changes, not on every probe.
 *
 * Fails with `InvalidOption` for an empty name, a name already registered, or
 * a timeout that is not a positive finite duration.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Health } from "effect-graceful"
 * const db = { ping: () => Promise.resolve() }
 * const DbCheck = Layer.effectDiscard(Health.check("db", Effect.promise(() => db.ping()), { timeout: "200 millis" }))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const check = <E, R>(
  name: string,
  run: Effect.Effect<unknown, E, R>,
  options: CheckOptions = {}
): Effect.Effect<void, InvalidOption, Quit.Quit | Scope.Scope | R> =>
  Effect.gen(function*() {
    const quit = yield* current
    if (name.trim() === "") {
      return yield* new InvalidOption({ variable: "Health.check name", value: name, reason: "expected a name for the check" })
    }
    if (quit.readiness.has(name)) {
      return yield* new InvalidOption({
        variable: "Health.check name",
        value: name,
        reason: "a check with this name is already registered; names must be unique"
      })
    }
    const variable = `Health.check ${name} timeout`
    const timeout = yield* durationOr(options.timeout, CHECK_TIMEOUT, variable)
    if (Duration.isZero(timeout)) {
      return yield* new InvalidOption({ variable, value: String(options.timeout), reason: "must be more than 0" })
    }
    const context = yield* Effect.context<R>()
    const remove = quit.readiness.add({ name, run: Effect.provideContext(run, context), timeout })
    yield* Effect.addFinalizer(() => Effect.sync(remove))
  })

/**
 * Marks the program not ready for `reason` (warming a cache, shedding load)
 * until {@link markReady}: readiness answers 503 meanwhile, liveness stays
 * 200. Logged when the mark changes. Marking before the program runs keeps it
 * not ready past its start, until it marks itself ready.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Health } from "effect-graceful"
 * const warm = (load: Effect.Effect<void>) =>
 *   Effect.andThen(Health.markNotReady("warming the cache"), Effect.ensuring(load, Health.markReady))
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const markNotReady = (reason: string): Effect.Effect<void, never, Quit.Quit> =>
  Effect.flatMap(current, (quit) => quit.readiness.setMark(reason.trim() === "" ? "unspecified" : reason))

/**
 * Ends {@link markNotReady}: readiness follows the phase and the checks again.
 *
 * @example
 * ```ts
 * import { Health } from "effect-graceful"
 * const ready = Health.markReady
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const markReady: Effect.Effect<void, never, Quit.Quit> = Effect.flatMap(current, (quit) => quit.readiness.setMark(undefined))

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
 * @category constructors
 * @since 0.1.0
 */
export const handler = (options: ProbeOptions = {}): Effect.Effect<Handler, never, Quit.Quit> =>
  Effect.flatMap(current, (quit) => probes.makeHandler(quit, options))

/**
 * Options of the standalone health server: where it listens, and its probes.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options extends ProbeOptions, Net.ListenOptions {}

/**
 * The server of {@link layer}: where it listens (with `port: 0`, the port
 * the system picked).
 *
 * @category services
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
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Server, BindError, Quit.Quit> =>
  Layer.effect(Server, Effect.gen(function*() {
    const quit = yield* current
    const { detail, livenessPath, metrics, readinessPath, ...listenOptions } = options
    const answer = yield* probes.makeHandler(quit, { detail, livenessPath, metrics, readinessPath })
    const server = Http.createServer((request, response) => {
      if (!answer(request, response)) response.writeHead(404, { "content-length": 0 }).end()
    })
    const close = Effect.sync(() => {
      server.close()
      server.closeAllConnections()
    })
    yield* Effect.acquireRelease(listen(server, listenOptions, "health"), () =>
      quit.hasFired() ? Effect.asVoid(Effect.forkDetach(Effect.andThen(quit.reached("stopped"), close))) : close)
    yield* Effect.logInfo(`health listening on ${describeAddress(server, "http")}`)
    const address = server.address() as Net.AddressInfo
    return { port: address.port, host: address.address }
  }))
