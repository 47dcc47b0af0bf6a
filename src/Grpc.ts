/**
 * Graceful gRPC servers: a grpc-js server as a scoped layer, handlers written
 * as Effects, the standard `grpc.health.v1` service driven by the quit event,
 * and a bounded graceful stop.
 *
 * A server stops in this order:
 *
 * 1. The quit event fires: health reports every service NOT_SERVING at once,
 *    so clients and balancers stop routing here. Calls are still served
 *    through the drain delay.
 * 2. The drain delay ends and the layer closes: `tryShutdown` closes the
 *    listener and sends GOAWAY — no new calls, in-flight calls go on — and
 *    health Watch streams end with OK. `Call.closing` completes, so long
 *    streams can finish with OK.
 * 3. The moment the last call ends, the server has drained.
 * 4. If calls are still running at the drain deadline, `forceShutdown` cancels
 *    them: their fibers are interrupted and their finalizers run.
 * 5. The connections close (flushing the last responses); any still open
 *    after the close timeout are destroyed.
 *
 * Until then health says SERVING for the whole server (`""`) and each service
 * — from the moment the program runs: `Main.runMain` marks it running once
 * every layer is built, and NOT_SERVING comes first while it starts — as long
 * as the program is ready: a failing `Health.check` (run afresh on every
 * health `Check`) or `Health.markNotReady` makes it NOT_SERVING, as it makes
 * HTTP readiness 503.
 *
 * The server is one row of the shutdown report (kind `grpc`) with its calls
 * in flight, which are also the `effect_graceful_in_flight` gauge; ended calls
 * are counted by `effect_graceful_grpc_calls_total` per method and status.
 *
 * @since 0.1.0
 */
import type * as protoLoader from "@grpc/proto-loader"
import type { Scope, Stream } from "effect"
import { Context, Effect, Layer } from "effect"
import type { InvalidOption } from "./internal/core/options.ts"
import * as preflight from "./internal/core/preflight.ts"
import type * as call from "./internal/grpc/call.ts"
import * as internal from "./internal/grpc/server.ts"
import * as listen_ from "./internal/http/listen.ts"
import * as services from "./internal/grpc/service.ts"
import type * as Quit from "./Quit.ts"

// ---- services and handlers ---------------------------------------------------

/**
 * A method as grpc-js and proto-loader describe it. Typed definitions (from
 * `proto-loader-gen-types`, or {@link loadService} with message types) give
 * handlers their request and response types.
 *
 * @category models
 * @since 0.1.0
 */
export interface Method<Req = unknown, Res = unknown> {
  readonly path: string
  readonly requestStream: boolean
  readonly responseStream: boolean
  requestDeserialize(bytes: Buffer): Req
  responseSerialize(value: Res): Buffer
}

/** A service definition: its methods by name. @category models @since 0.1.0 */
export type Definition = { readonly [method: string]: Method }

/** The request and response type of each method, for {@link loadService}. @category models @since 0.1.0 */
export type Messages = { readonly [method: string]: { readonly request: unknown; readonly response: unknown } }

type Untyped = { readonly [method: string]: { readonly request: { readonly [field: string]: unknown }; readonly response: object } }

/** What a handler sees of its call: metadata in and out, deadline, `closing`. @category models @since 0.1.0 */
export type Call = call.Call

/** A gRPC status: a code from `@grpc/grpc-js`'s `status`, details, trailers. @category models @since 0.1.0 */
export type Status = call.Status

// Each kind keeps its function under its own name: a handler's types are
// inferred from the method it is given to, and distinct names keep one kind's
// request type from leaking into another's.

/** @category models @since 0.1.0 */
export interface Unary<Req, Res, E, R> {
  readonly _tag: "unary"
  unary(request: Req, call: Call): Effect.Effect<Res, E, R>
}
/** @category models @since 0.1.0 */
export interface ServerStream<Req, Res, E, R> {
  readonly _tag: "serverStream"
  serverStream(request: Req, call: Call): Stream.Stream<Res, E, R>
}
/** @category models @since 0.1.0 */
export interface ClientStream<Req, Res, E, R> {
  readonly _tag: "clientStream"
  clientStream(requests: Stream.Stream<Req>, call: Call): Effect.Effect<Res, E, R>
}
/** @category models @since 0.1.0 */
export interface Bidi<Req, Res, E, R> {
  readonly _tag: "bidi"
  bidi(requests: Stream.Stream<Req>, call: Call): Stream.Stream<Res, E, R>
}

/** A method's handler, made by {@link unary}, {@link serverStream}, {@link clientStream} or {@link bidi}. @category models @since 0.1.0 */
export type Handler<Req, Res, E, R> =
  | Unary<Req, Res, E, R>
  | ServerStream<Req, Res, E, R>
  | ClientStream<Req, Res, E, R>
  | Bidi<Req, Res, E, R>

/**
 * A unary handler: one request in, one response out.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Grpc from "effect-graceful/Grpc"
 * const sayHello = Grpc.unary((request: { name: string }) => Effect.succeed({ message: `hello ${request.name}` }))
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const unary = <Req, Res, E = never, R = never>(
  run: (request: Req, call: Call) => Effect.Effect<Res, E, R>
): Unary<Req, Res, E, R> => ({ _tag: "unary", unary: run })

/**
 * A server-streaming handler: the responses are a `Stream`, written with
 * backpressure. End it on `call.closing` to finish with OK when the server stops.
 *
 * @example
 * ```ts
 * import { Schedule, Stream } from "effect"
 * import * as Grpc from "effect-graceful/Grpc"
 * const ticks = Grpc.serverStream((_: object, call) =>
 *   Stream.fromSchedule(Schedule.spaced("1 second")).pipe(Stream.map((n) => ({ n })), Stream.interruptWhen(call.closing)))
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const serverStream = <Req, Res, E = never, R = never>(
  run: (request: Req, call: Call) => Stream.Stream<Res, E, R>
): ServerStream<Req, Res, E, R> => ({ _tag: "serverStream", serverStream: run })

/**
 * A client-streaming handler: the requests arrive as a `Stream`, read on
 * demand; one response out.
 *
 * @category constructors
 * @since 0.1.0
 */
export const clientStream = <Req, Res, E = never, R = never>(
  run: (requests: Stream.Stream<Req>, call: Call) => Effect.Effect<Res, E, R>
): ClientStream<Req, Res, E, R> => ({ _tag: "clientStream", clientStream: run })

/**
 * A bidirectional-streaming handler: a `Stream` of requests in, a `Stream` of
 * responses out.
 *
 * @category constructors
 * @since 0.1.0
 */
export const bidi = <Req, Res, E = never, R = never>(
  run: (requests: Stream.Stream<Req>, call: Call) => Stream.Stream<Res, E, R>
): Bidi<Req, Res, E, R> => ({ _tag: "bidi", bidi: run })

type RequestOf<M> = M extends { requestDeserialize(bytes: Buffer): infer Req } ? Req : never
type ResponseOf<M> = M extends { responseSerialize(value: infer Res): Buffer } ? Res : never
type Handlers<D extends Definition> = {
  readonly [K in keyof D]: Handler<RequestOf<D[K]>, ResponseOf<D[K]>, unknown, unknown>
}
type ErrorOf<H> = { [K in keyof H]: H[K] extends Handler<infer _Q, infer _S, infer E, infer _R> ? E : never }[keyof H]
type ContextOf<H> = { [K in keyof H]: H[K] extends Handler<infer _Q, infer _S, infer _E, infer R> ? R : never }[keyof H]

/**
 * A failure that carries its own status: fail with it to answer with a code of
 * your choice, without a mapping.
 *
 * @example
 * ```ts
 * import { status } from "@grpc/grpc-js"
 * import { Effect } from "effect"
 * import * as Grpc from "effect-graceful/Grpc"
 * const notFound = Effect.fail(new Grpc.StatusError({ code: status.NOT_FOUND, details: "no such user" }))
 * ```
 * @category errors
 * @since 0.1.0
 */
export const StatusError: typeof services.StatusError = services.StatusError
/** @category models @since 0.1.0 */
export type StatusError = services.StatusError

/**
 * The status of a typed failure no mapping claimed: a {@link StatusError}
 * keeps its own; anything else is UNKNOWN with its message (what grpc-js does
 * for errors thrown by plain handlers).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultStatus: (error: unknown) => Status = services.defaultStatus

/**
 * A service ready to serve: a definition and its handlers, made by
 * {@link service}. Its `name` is the full service name (`package.Service`), as
 * health reports it.
 *
 * @category models
 * @since 0.1.0
 */
export type Service<R> = services.Service<R>

/**
 * Pairs a service definition with an Effect handler per method. Request and
 * response types come from the definition; the errors and requirements of the
 * handlers become the service's. `onFailure` chooses the status of a typed
 * failure (return `undefined` to fall back to {@link defaultStatus}); defects
 * are always INTERNAL.
 *
 * A handler whose kind does not match its method (a `unary` handler for a
 * streaming method), or a handler for a method the definition lacks, is a
 * programming error: `service` throws at once.
 *
 * @example
 * ```ts
 * import { status } from "@grpc/grpc-js"
 * import { Effect } from "effect"
 * import * as Grpc from "effect-graceful/Grpc"
 * class NoSuchUser { readonly _tag = "NoSuchUser" }
 * type Users = { readonly Get: { readonly request: { id: string }; readonly response: { name: string } } }
 * const UsersService = Effect.map(Grpc.loadService<Users>("users.proto", "demo.Users"), (Users) =>
 *   Grpc.service(Users, {
 *     Get: Grpc.unary(({ id }) => id === "1" ? Effect.succeed({ name: "Ada" }) : Effect.fail(new NoSuchUser()))
 *   }, { onFailure: (error) => ({ code: status.NOT_FOUND, details: error._tag }) }))
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const service = <D extends Definition, H extends Handlers<D>>(
  definition: D,
  handlers: H,
  options: { readonly onFailure?: (error: ErrorOf<H>) => Status | undefined } = {}
): Service<ContextOf<H>> => {
  // Erasing types for grpc-js: `H extends Handlers<D>` has checked each
  // handler against its method, and ContextOf<H> is what they require.
  const erased = handlers as unknown as { readonly [method: string]: services.AnyHandler<ContextOf<H>> }
  const onFailure = options.onFailure
  const { methods, name } = services.registered(definition, erased)
  return {
    name,
    [services.internals]: {
      methods,
      onFailure: onFailure === undefined
        ? defaultStatus
        // Only this service's handlers fail into it, with errors of their types.
        : (error) => onFailure(error as ErrorOf<H>) ?? defaultStatus(error)
    }
  }
}

/**
 * A `.proto` file or its service that cannot be loaded.
 *
 * @category errors
 * @since 0.1.0
 */
export const ProtoError: typeof services.ProtoError = services.ProtoError
/** @category models @since 0.1.0 */
export type ProtoError = services.ProtoError

/**
 * Loads one service of a `.proto` file with `@grpc/proto-loader`. Name the
 * request and response types of its methods to type the handlers; otherwise
 * requests are plain objects. Options default to `keepCase`, `longs: String`,
 * `enums: String`, `defaults` and `oneofs`.
 *
 * @example
 * ```ts
 * import * as Grpc from "effect-graceful/Grpc"
 * const Greeter = Grpc.loadService<{ SayHello: { request: { name: string }; response: { message: string } } }>(
 *   "greeter.proto", "demo.Greeter")
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const loadService = <M extends Messages = Untyped>(
  file: string,
  service: string,
  options: protoLoader.Options = {}
): Effect.Effect<{ readonly [K in keyof M]: Method<M[K]["request"], M[K]["response"]> }, ProtoError> =>
  Effect.map(
    services.loadService(file, service, options),
    // The message types are the caller's word, as with proto-loader-gen-types.
    (definition) => definition as unknown as { readonly [K in keyof M]: Method<M[K]["request"], M[K]["response"]> }
  )

// ---- the server ----------------------------------------------------------------

/**
 * Where and what a server serves: its `services` (made with {@link service}),
 * `name` in the report (default `grpc`), `host` and `port` (default `GRPC_HOST`
 * / `GRPC_PORT` from the environment, else `0.0.0.0:50051`), `credentials`,
 * grpc-js `server` options, whether to serve `grpc.health.v1` (`health`,
 * default true), a `drainTimeout` of its own (shorter than the shared one),
 * and `reusePort` (SO_REUSEPORT, Linux: the next instance of a handoff may
 * listen on the same port before this one leaves).
 *
 * @category models
 * @since 0.1.0
 */
export type ServeOptions<R> = internal.ServeOptions<R>

/**
 * A running server: its unique `name`, bound `address` and `port`, the grpc-js
 * `server`, its calls `inFlight`, and `setStatus` for the health of one
 * service until the quit event (from then on every service is NOT_SERVING).
 *
 * @category models
 * @since 0.1.0
 */
export type Handle = internal.Handle

/**
 * The server of {@link layer}.
 *
 * @category services
 * @since 0.1.0
 */
export class Server extends Context.Service<Server, Handle>()("effect-graceful/Grpc/Server") {}

/**
 * The server could not listen on its address (in use, not this host's, a
 * permission missing): the same class as `Http.BindError` — one error for
 * every port the library binds — with the address, the system's code and
 * the cause.
 *
 * @category errors
 * @since 0.1.0
 */
export const BindError: typeof listen_.BindError = listen_.BindError
/** @category models @since 0.1.0 */
export type BindError = listen_.BindError

/**
 * Serves `services` for the lifetime of the current scope, stopping as the
 * module documentation describes when the scope closes. Use it directly for
 * several servers in one program; otherwise use {@link layer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Grpc from "effect-graceful/Grpc"
 * declare const Greeter: Grpc.Service<never>
 * const program = Effect.gen(function*() {
 *   const server = yield* Grpc.serve({ services: [Greeter], port: 0 })
 *   yield* Effect.log(`listening on ${server.address}`)
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const serve = <R>(
  options: ServeOptions<R>
): Effect.Effect<Handle, BindError | InvalidOption, R | Quit.Quit | Scope.Scope> =>
  internal.serve(options)

/**
 * A layer serving `services` until the program stops: {@link serve} as the
 * {@link Server} service.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import * as Grpc from "effect-graceful/Grpc"
 * import { Main } from "effect-graceful"
 * type Greeter = { SayHello: { request: { name: string }; response: { message: string } } }
 * const GrpcLive = Layer.unwrap(Effect.map(Grpc.loadService<Greeter>("greeter.proto", "demo.Greeter"), (Greeter) =>
 *   Grpc.layer({
 *     services: [Grpc.service(Greeter, { SayHello: Grpc.unary(({ name }) => Effect.succeed({ message: `hello ${name}` })) })]
 *   })))
 * Main.runMain(GrpcLive, { drainDelay: "5 seconds" })
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = <R>(
  options: ServeOptions<R>
): Layer.Layer<Server, BindError | InvalidOption, Exclude<R, Scope.Scope> | Quit.Quit> => {
  preflight.declare(internal.settings(options))
  return Layer.effect(Server, serve(options))
}
