/**
 * The server half of a graceful gRPC server: the per-server runtime every call
 * runs on, the registration of Effect handlers with grpc-js, binding, and the
 * order in which a server stops.
 *
 * @internal
 */
import * as grpc from "@grpc/grpc-js"
import * as Net from "node:net"
import type { Context, Fiber, Scope } from "effect"
import { Cause, Config, Deferred, Duration, Effect, Exit, Metric, Schema } from "effect"
import { read } from "../core/configError.ts"
import { first } from "../core/first.ts"
import * as groups from "../core/group.ts"
import type { DurationInput, InvalidOption } from "../core/options.ts"
import { current, type Quit } from "../core/quit.ts"
import { type BindError, listen } from "../http/listen.ts"
import * as call from "./call.ts"
import { Health } from "./health.ts"
import { internals, type Registered, type Service } from "./service.ts"

/**
 * Where and what a server serves.
 *
 * @internal
 */
export interface ServeOptions<R> {
  /** Made with `Grpc.service`; each is also a name health reports. */
  readonly services: ReadonlyArray<Service<R>>
  /** The row in the shutdown report and the metrics' `server`/`group` attribute. Default `grpc`. */
  readonly name?: string | undefined
  /** Default: `GRPC_HOST` from the environment, else `0.0.0.0`. */
  readonly host?: string | Config.Config<string> | undefined
  /** Default: `GRPC_PORT` from the environment, else 50051. `0` picks a free port. */
  readonly port?: number | Config.Config<number> | undefined
  /** Default: insecure. */
  readonly credentials?: grpc.ServerCredentials | undefined
  /** Options for the grpc-js `Server` (message sizes, keepalive, interceptors). */
  readonly server?: grpc.ServerOptions | undefined
  /** Serve `grpc.health.v1`. Default `true`. */
  readonly health?: boolean | undefined
  /**
   * Listen with `SO_REUSEPORT` (Linux): another process may listen on the
   * same port at the same time — the next instance of a handoff. (The port
   * is always a listener of ours whose connections are handed to grpc-js, so
   * grpc-js's `bindAsync`, which cannot, is not in the way.)
   */
  readonly reusePort?: boolean | undefined
  /** How long in-flight calls may run once the server stops: shorter than the shared drain timeout, never longer. */
  readonly drainTimeout?: DurationInput | undefined
}

/**
 * A running server.
 *
 * @internal
 */
export interface Handle {
  /** Its name in the report, unique (`grpc`, `grpc#2`). */
  readonly name: string
  /** The bound address, `host:port`. */
  readonly address: string
  /** The bound port: the one chosen when asked for port 0. */
  readonly port: number
  /** The grpc-js server, for what this module does not cover. */
  readonly server: grpc.Server
  /** Calls in flight now. */
  readonly inFlight: Effect.Effect<number>
  /**
   * Sets the health of one service (a dependency is down). Until the quit
   * event fires; from then on every service is NOT_SERVING.
   */
  readonly setStatus: (service: string, status: "SERVING" | "NOT_SERVING") => Effect.Effect<void>
}


const calls = (attributes: Metric.Metric.AttributeSet) =>
  Metric.counter("effect_graceful_grpc_calls_total", {
    description: "gRPC calls ended, per server, method and status code",
    incremental: true,
    attributes
  })

/**
 * The runtime of one server, made once when it starts: every call forks from
 * the same captured context and reuses the same counters, so a call costs a
 * fiber and no setup.
 */
const makeRuntime = <R>(options: {
  readonly name: string
  readonly context: Context.Context<R>
  readonly track: <A, E>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly closing: Effect.Effect<void>
  readonly isStopping: () => boolean
}): call.Runtime<R> => {
  const { context, name, track } = options
  const runFork = Effect.runForkWith(context)
  // One counter per method and status code, made on first use, with its
  // attributes fixed (cheaper per update than `Metric.withAttributes`).
  const counters = new Map<string, Array<Metric.Metric<number, Metric.CounterState<number>> | undefined>>()
  const counter = (method: string, code: grpc.status) => {
    let byCode = counters.get(method)
    if (byCode === undefined) counters.set(method, byCode = [])
    return byCode[code] ??= calls({ server: name, method, code: grpc.status[code] })
  }
  return {
    run: <A, E>(effect: Effect.Effect<A, E, R>): Fiber.Fiber<A, E> => runFork(track(effect)),
    closing: options.closing,
    isStopping: options.isStopping,
    ended: (method, status, cause) => {
      counter(method, status.code).updateUnsafe(1, context)
      if (cause !== undefined && Cause.hasDies(cause)) {
        runFork(Effect.logError(`${name}: ${method} failed with a defect; the client got INTERNAL`, cause))
      }
    }
  }
}

/** Registers the methods of one service; a path registered twice is a defect. */
const register = <R>(
  server: grpc.Server,
  runtime: call.Runtime<R>,
  methods: ReadonlyArray<Registered<R>>,
  onFailure: call.OnFailure
): Effect.Effect<void> =>
  Effect.forEach(methods, (method) => {
    const { handler } = method
    const handle = handler._tag === "unary"
      ? call.unary(runtime, handler, onFailure)
      : handler._tag === "serverStream"
      ? call.serverStream(runtime, handler, onFailure)
      : handler._tag === "clientStream"
      ? call.clientStream(runtime, handler, onFailure)
      : call.bidi(runtime, handler, onFailure)
    return server.register(method.path, handle, method.responseSerialize, method.requestDeserialize, handler._tag)
      ? Effect.void
      : Effect.die(new Error(`gRPC method ${method.path} is registered twice`))
  }, { discard: true })

/** How long connections with nothing in flight may take to close once the server drained. */
const GRACE_MILLIS = 1000

/** The address grpc-js binds: `host:port`, with brackets around an IPv6 host. */
const formatAddress = (host: string, port: number): string =>
  host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`

/**
 * Listens on `host:port` with a listener of ours and hands each connection to
 * grpc-js (`createConnectionInjector`), rather than `bindAsync`: grpc-js
 * tracks a connection only once its HTTP/2 session exists, so a TLS
 * handshake that never finishes would outlive `forceShutdown`; ours are
 * tracked from TCP accept, and step 4 of `serve` destroys what is left.
 * `SO_REUSEPORT` is ours to set too, which `bindAsync` cannot. The server's
 * stop closes the listener (step 2); a failed start closes it through
 * `listen`.
 */
const bind = (
  server: grpc.Server,
  host: string,
  port: number,
  credentials: grpc.ServerCredentials,
  reusePort: boolean,
  name: string
): Effect.Effect<{ readonly listener: Net.Server; readonly sockets: ReadonlySet<Net.Socket> }, BindError> =>
  Effect.gen(function*() {
    const injector = server.createConnectionInjector(credentials)
    const sockets = new Set<Net.Socket>()
    const listener = Net.createServer((socket) => {
      sockets.add(socket)
      socket.once("close", () => sockets.delete(socket))
      injector.injectConnection(socket)
    })
    yield* listen(listener, { host, port, reusePort }, name)
    return { listener, sockets }
  })

const setting = <A>(value: A | Config.Config<A> | undefined, fallback: Config.Config<A>) =>
  read(value === undefined ? fallback : Config.isConfig(value) ? value : Config.succeed(value))

/** Where to listen: the options, else GRPC_HOST and GRPC_PORT. @internal */
export const settings = (options: Pick<ServeOptions<never>, "host" | "port">) =>
  Effect.all({
    host: setting(options.host, Config.String("GRPC_HOST").pipe(Config.withDefault("0.0.0.0"))),
    port: setting(options.port, Config.schema(Schema.Port, "GRPC_PORT").pipe(Config.withDefault(50051)))
  })

/**
 * Serves until the current scope closes, then stops in this order:
 *
 * 1. (already, when the quit event fired) health went NOT_SERVING;
 * 2. `tryShutdown`: the listener closes and GOAWAY goes out; Watch streams
 *    end with OK; `Call.closing` completes;
 * 3. the group waits for the last call — event-driven — up to the drain
 *    deadline, then `forceShutdown` cancels the rest and their fibers are
 *    interrupted;
 * 4. the connections close, flushing the last responses; any still open after
 *    the close timeout (or at the close deadline) are destroyed.
 *
 * @internal
 */
export const serve = <R>(
  options: ServeOptions<R>
): Effect.Effect<Handle, BindError | InvalidOption, R | Quit | Scope.Scope> =>
  Effect.gen(function*() {
    const quit = yield* current
    const name = options.name ?? "grpc"
    // Checked before anything is acquired.
    yield* groups.timeouts(quit, name, options)
    const { host, port } = yield* settings(options)
    const health = new Health(
      options.services.map((service) => service.name),
      (then) => quit.readiness.readyThen(then),
      // Probers of gRPC health, as of HTTP readiness: for an automatic drain delay.
      (peer, serving) => quit.routing.probe(`${peer} (gRPC health)`, serving, quit.now())
    )
    // The program's mark, told to Watch streams as it changes; checks are run when a Check asks.
    const unlisten = quit.readiness.onMark(() => health.refresh())
    yield* Effect.addFinalizer(() => Effect.sync(unlisten))
    const server = new grpc.Server(options.server)
    // Completed once every connection has closed: our listener's own close
    // says so (tryShutdown calls back at once for injected connections —
    // grpc-js sees their sessions as closed the moment it asks them to close).
    const closed = Deferred.makeUnsafe<void>()
    const allClosed = () => Deferred.doneUnsafe(closed, Exit.void)
    let stopping = false
    let listener: Net.Server | undefined
    let sockets: ReadonlySet<Net.Socket> = new Set<Net.Socket>()
    const stop = () => {
      if (stopping) return
      stopping = true
      health.quit()
      if (listener?.listening === true) listener.close(allClosed)
      else allClosed()
      server.tryShutdown(() => {})
      health.endWatches()
    }
    // Step 4, once the group has drained. With no call in flight, what is
    // left carries nothing (an idle session, a TLS handshake that never
    // finished): a short grace for the last frames to flush, then it is
    // destroyed. With calls still in flight (stuck past the cut), they are
    // destroyed at the close deadline.
    const closeConnections = (stuck: number) =>
      Effect.gen(function*() {
        stop()
        const idle = stuck === 0
        const closeTimeout = Duration.toMillis(quit.options.closeTimeout)
        const wait = idle ? Math.min(GRACE_MILLIS, closeTimeout) : closeTimeout
        const done = yield* first(
          Effect.as(Deferred.await(closed), true),
          Effect.as(quit.until(quit.now() + wait, "close"), false)
        )
        if (done) return
        server.forceShutdown()
        // What grpc-js does not know of: connections with no session yet.
        for (const socket of sockets) socket.destroy()
        yield* idle
          ? Effect.logDebug(`${name}: connections with nothing in flight closed`)
          : Effect.logWarning(`${name}: connections still open at the close deadline; destroyed`)
      })
    // Steps 2 and 3. tryShutdown's callback is not awaited here: the group's
    // wait-until-idle is the wait, and it ends the moment the last call does.
    const { group, inFlight } = yield* groups.make(quit, name, {
      kind: "grpc",
      drainTimeout: options.drainTimeout,
      // Step 1: NOT_SERVING the moment the quit event fires — before the drain delay.
      onFire: () => health.quit(),
      // Step 2, in the turn the drain delay ends; the drain's own stop is for a
      // scope that closes while the program runs on.
      onStopping: stop,
      onStop: Effect.sync(stop),
      onCut: Effect.sync(() => server.forceShutdown()),
      afterDrain: closeConnections
    })
    const runtime = makeRuntime<R>({
      name: group.name,
      context: yield* Effect.context<R>(),
      // Counted in the call's own fiber, which the cut interrupts whole.
      // From the quit event, each call is evidence that routing here goes on.
      track: (unit) => {
        if (quit.hasFired()) quit.routing.request(quit.now())
        return inFlight.track(unit)
      },
      closing: group.closing,
      isStopping: () => stopping
    })
    for (const service of options.services) {
      yield* register(server, runtime, service[internals].methods, service[internals].onFailure)
    }
    if (options.health !== false) health.addTo(server)
    const credentials = options.credentials ?? grpc.ServerCredentials.createInsecure()
    const own = yield* bind(server, host, port, credentials, options.reusePort === true, name)
    listener = own.listener
    sockets = own.sockets
    const bound = (own.listener.address() as Net.AddressInfo).port
    // Step 1: SERVING once the program runs (at once if it already does), then
    // NOT_SERVING the moment the quit event fires — before the drain delay.
    yield* Effect.forkScoped(Effect.andThen(quit.reached("running"), Effect.sync(() => health.running())), {
      startImmediately: true
    })
    const handle: Handle = {
      name: group.name,
      address: formatAddress(host, bound),
      port: bound,
      server,
      inFlight: group.inFlight,
      setStatus: (service, status) => Effect.sync(() => health.set(service, status))
    }
    yield* Effect.logInfo(`${group.name}: gRPC listening on ${handle.address}`)
    return handle
  })
