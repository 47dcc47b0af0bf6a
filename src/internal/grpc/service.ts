/**
 * Services as grpc-js registers them: definitions loaded from `.proto` files,
 * handlers checked against their methods, and the statuses of typed failures.
 *
 * @internal
 */
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import type { Stream } from "effect"
import { Data, Effect } from "effect"
import type { Call, Status } from "./call.ts"

/** A handler as registered: its kind and its function, types erased. @internal */
export type AnyHandler<R> =
  | { readonly _tag: "unary"; unary(request: unknown, call: Call): Effect.Effect<unknown, unknown, R> }
  | { readonly _tag: "serverStream"; serverStream(request: unknown, call: Call): Stream.Stream<unknown, unknown, R> }
  | { readonly _tag: "clientStream"; clientStream(requests: Stream.Stream<unknown>, call: Call): Effect.Effect<unknown, unknown, R> }
  | { readonly _tag: "bidi"; bidi(requests: Stream.Stream<unknown>, call: Call): Stream.Stream<unknown, unknown, R> }

/** A method as the definitions of grpc-js and proto-loader give it. @internal */
export interface MethodDefinition {
  readonly path: string
  readonly requestStream: boolean
  readonly responseStream: boolean
  requestDeserialize(bytes: Buffer): unknown
  responseSerialize(value: unknown): Buffer
}

/** One method of a service, ready for grpc-js. @internal */
export interface Registered<R> {
  readonly path: string
  readonly handler: AnyHandler<R>
  responseSerialize(value: unknown): Buffer
  requestDeserialize(bytes: Buffer): unknown
}

/** @internal */
export class StatusError extends Data.TaggedError("GrpcStatusError")<{
  readonly code: grpc.status
  readonly details?: string | undefined
  readonly metadata?: grpc.Metadata | undefined
}> {
  override get message(): string {
    return `${grpc.status[this.code]}: ${this.details ?? ""}`
  }
}

/** @internal */
export class ProtoError extends Data.TaggedError("GrpcProtoError")<{
  readonly file: string
  readonly service: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot load gRPC service ${this.service} from ${this.file}: ${this.reason}`
  }
}

/** @internal */
export const defaultStatus = (error: unknown): Status => {
  if (error instanceof StatusError) return { code: error.code, details: error.details, metadata: error.metadata }
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : undefined
  const details = error instanceof Error && error.message !== "" ? error.message : tag ?? String(error)
  return { code: grpc.status.UNKNOWN, details }
}

const kindOf = (method: MethodDefinition): AnyHandler<unknown>["_tag"] =>
  method.requestStream
    ? (method.responseStream ? "bidi" : "clientStream")
    : (method.responseStream ? "serverStream" : "unary")

/**
 * Pairs each handler with its method. A handler of the wrong kind, or for a
 * method the definition lacks, is a programming error, thrown at once.
 *
 * @internal
 */
export const registered = <R>(
  definition: { readonly [method: string]: MethodDefinition },
  handlers: { readonly [method: string]: AnyHandler<R> }
): { readonly name: string; readonly methods: ReadonlyArray<Registered<R>> } => {
  const first = Object.values(definition)[0]
  if (first === undefined) throw new Error("the service definition has no methods")
  const methods = Object.entries(handlers).map(([name, handler]): Registered<R> => {
    const method = definition[name]
    if (method === undefined) throw new Error(`the service definition has no method ${name}`)
    const kind = kindOf(method)
    if (handler._tag !== kind) {
      throw new Error(`${method.path} is a ${kind} method; its handler was made with Grpc.${handler._tag}`)
    }
    return {
      path: method.path,
      handler,
      responseSerialize: (value) => method.responseSerialize(value),
      requestDeserialize: (bytes) => method.requestDeserialize(bytes)
    }
  })
  // "/package.Service/Method" → "package.Service", the name health reports.
  return { name: first.path.split("/")[1] ?? "", methods }
}

/** @internal */
export const loadService = (
  file: string,
  service: string,
  options: protoLoader.Options
): Effect.Effect<protoLoader.ServiceDefinition, ProtoError> =>
  Effect.try({
    try: () =>
      protoLoader.loadSync(file, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, ...options }),
    catch: (error) => new ProtoError({ file, service, reason: error instanceof Error ? error.message : String(error) })
  }).pipe(Effect.flatMap((loaded) => {
    const found = loaded[service]
    // Messages and enums have a `format`; services do not.
    if (found !== undefined && !("format" in found)) return Effect.succeed(found)
    const services = Object.keys(loaded).filter((name) => !("format" in loaded[name]!))
    return Effect.fail(new ProtoError({ file, service, reason: `no such service; it has: ${services.join(", ")}` }))
  }))

/** Where a service keeps what only the server reads. @internal */
export const internals: unique symbol = Symbol("effect-graceful/Grpc/Service")

/** A service ready to serve: a definition and its handlers. @internal */
export interface Service<R> {
  /** The full service name (`package.Service`), as health reports it. */
  readonly name: string
  /** Its handlers and their failure mapping, for the server only. */
  readonly [internals]: {
    readonly methods: ReadonlyArray<Registered<R>>
    readonly onFailure: (error: unknown) => Status
  }
}
