/**
 * One gRPC call as an Effect: the functions grpc-js calls for each kind of
 * method, the call context a handler sees, and how the handler's exit becomes
 * the status the client receives.
 *
 * Every call runs in its own root fiber, started by the server's runtime
 * (captured once per server) and counted by the server's group, so that:
 *
 * - the client cancelling, or the call's deadline passing, interrupts it
 *   (grpc-js reports both as the call's `cancelled` event);
 * - the drain deadline can cut it like any other counted unit.
 *
 * @internal
 */
import * as grpc from "@grpc/grpc-js"
import type { EventEmitter } from "node:events"
import type { Fiber } from "effect"
import { Cause, Effect, Exit, Option, Stream } from "effect"

/** @internal */
export interface Status {
  readonly code: grpc.status
  readonly details?: string | undefined
  readonly metadata?: grpc.Metadata | undefined
}

/** The grpc-js call object of any kind of method. @internal */
export type RawCall =
  | grpc.ServerUnaryCall<unknown, unknown>
  | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown>
  | grpc.ServerDuplexStream<unknown, unknown>

/** What a handler sees of its call besides the request. @internal */
export interface Call {
  /** The full method path, `/package.Service/Method`. */
  readonly method: string
  /** The metadata the client sent. */
  readonly metadata: grpc.Metadata
  /** Metadata sent with the final status, OK or not: add entries to it. */
  readonly trailers: grpc.Metadata
  /** Sends response headers now; only the first call has an effect. */
  readonly sendMetadata: (metadata: grpc.Metadata) => Effect.Effect<void>
  /** The client's address. */
  readonly peer: string
  /** The call's deadline (`Infinity` when the client set none). */
  readonly deadline: grpc.Deadline
  /**
   * Completes when the server begins to stop — after the drain delay, as it
   * stops taking calls. A long stream ends itself here to finish with OK.
   */
  readonly closing: Effect.Effect<void>
  /** The grpc-js call, for what this interface does not cover. */
  readonly raw: RawCall
}

/** What every call of one server shares, captured when the server starts. @internal */
export interface Runtime<R> {
  /** Starts `effect` as a counted unit in a fiber of its own. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, R>) => Fiber.Fiber<A, E>
  readonly closing: Effect.Effect<void>
  /** True once the server has begun to stop: an interruption then means shutdown. */
  readonly isStopping: () => boolean
  /** Records how a call ended (metrics; a defect is logged). */
  readonly ended: (method: string, status: Status, cause: Cause.Cause<unknown> | undefined) => void
}

/** How typed failures of one service become statuses. @internal */
export type OnFailure = (error: unknown) => Status

class CallContext implements Call {
  readonly raw: RawCall
  readonly closing: Effect.Effect<void>
  #trailers: grpc.Metadata | undefined

  constructor(raw: RawCall, closing: Effect.Effect<void>) {
    this.raw = raw
    this.closing = closing
  }
  get method() {
    return this.raw.getPath()
  }
  get metadata() {
    return this.raw.metadata
  }
  get peer() {
    return this.raw.getPeer()
  }
  get deadline() {
    return this.raw.getDeadline()
  }
  // Made on first use: most calls send no trailers, and the hot path stays lean.
  get trailers() {
    return this.#trailers ??= new grpc.Metadata()
  }
  get trailersIfAny() {
    return this.#trailers
  }
  sendMetadata(metadata: grpc.Metadata) {
    return Effect.sync(() => this.raw.sendMetadata(metadata))
  }
}

/**
 * The status for a failed exit: a typed failure goes through the service's
 * mapping, a defect is INTERNAL (its message stays in the server log), and an
 * interruption is UNAVAILABLE during shutdown — so clients retry elsewhere —
 * or CANCELLED otherwise.
 *
 * @internal
 */
export const failureStatus = (cause: Cause.Cause<unknown>, onFailure: OnFailure, stopping: boolean): Status => {
  const error = Cause.findErrorOption(cause)
  if (Option.isSome(error)) return onFailure(error.value)
  if (Cause.hasDies(cause)) return { code: grpc.status.INTERNAL, details: "Internal error" }
  return stopping
    ? { code: grpc.status.UNAVAILABLE, details: "the server is shutting down" }
    : { code: grpc.status.CANCELLED, details: "the call was cancelled" }
}

type Writable = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>

// What every kind of call has, as `start` uses it.
type Surface = EventEmitter & {
  readonly cancelled: boolean
  getPath(): string
  getDeadline(): grpc.Deadline
}

const deadlinePassed = (call: Surface) => {
  const deadline = call.getDeadline()
  return (typeof deadline === "number" ? deadline : deadline.getTime()) <= Date.now()
}

/**
 * Starts the handler's effect and wires the call's end both ways: the client
 * going away interrupts the fiber, and the fiber's exit sends the status.
 */
const start = <A, R>(
  runtime: Runtime<R>,
  call: Surface,
  handle: () => Effect.Effect<A, unknown, R>,
  onFailure: OnFailure,
  settle: (exit: Exit.Exit<A, unknown>, status: Status) => void
): void => {
  // Suspended, so that a handler throwing instead of returning an Effect is a
  // defect (INTERNAL, logged) like any other.
  const fiber = runtime.run(Effect.suspend(handle))
  // grpc-js emits `cancelled` for a client cancel, a passed deadline, a reset
  // stream — and after every status it sends, when the fiber is done and the
  // interrupt does nothing.
  if (fiber.pollUnsafe() === undefined) call.once("cancelled", () => fiber.interruptUnsafe())
  fiber.addObserver((exit) => {
    const path = call.getPath()
    if (Exit.isSuccess(exit)) {
      const ok = { code: grpc.status.OK }
      runtime.ended(path, ok, undefined)
      return settle(exit, ok)
    }
    // A client that went away gets nothing; what it caused is a cancel (or
    // a passed deadline), whatever the interrupted handler died with.
    const status = call.cancelled
      ? { code: deadlinePassed(call) ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED }
      : failureStatus(exit.cause, onFailure, runtime.isStopping())
    runtime.ended(path, status, call.cancelled ? undefined : exit.cause)
    if (!call.cancelled) settle(exit, status)
  })
}

const asError = (status: Status, context: CallContext): Partial<grpc.StatusObject> => ({
  code: status.code,
  details: status.details ?? grpc.status[status.code],
  metadata: status.metadata ?? context.trailersIfAny ?? new grpc.Metadata()
})

// Unary responses go through grpc-js's callback, with the trailers.
const respondWith = (callback: grpc.sendUnaryData<unknown>, context: CallContext) =>
(exit: Exit.Exit<unknown, unknown>, status: Status): void =>
  Exit.isSuccess(exit) ? callback(null, exit.value, context.trailersIfAny) : callback(asError(status, context))

// The writable's own `error` handler turns a status-shaped error into the
// final status and ends the stream after the queued messages.
const endWith = (call: Writable, context: CallContext) => (exit: Exit.Exit<void, unknown>, status: Status): void => {
  if (Exit.isSuccess(exit)) call.end(context.trailersIfAny)
  else call.emit("error", asError(status, context))
}

/** @internal */
export const unary = <R>(
  runtime: Runtime<R>,
  handler: { unary(request: unknown, call: Call): Effect.Effect<unknown, unknown, R> },
  onFailure: OnFailure
): grpc.handleUnaryCall<unknown, unknown> =>
(call, callback) => {
  const context = new CallContext(call, runtime.closing)
  start(runtime, call, () => handler.unary(call.request, context), onFailure, respondWith(callback, context))
}

/** @internal */
export const clientStream = <R>(
  runtime: Runtime<R>,
  handler: { clientStream(requests: Stream.Stream<unknown>, call: Call): Effect.Effect<unknown, unknown, R> },
  onFailure: OnFailure
): grpc.handleClientStreamingCall<unknown, unknown> =>
(call, callback) => {
  const context = new CallContext(call, runtime.closing)
  start(runtime, call, () => handler.clientStream(requests(call), context), onFailure, respondWith(callback, context))
}

/** @internal */
export const serverStream = <R>(
  runtime: Runtime<R>,
  handler: { serverStream(request: unknown, call: Call): Stream.Stream<unknown, unknown, R> },
  onFailure: OnFailure
): grpc.handleServerStreamingCall<unknown, unknown> =>
(call) => {
  const context = new CallContext(call, runtime.closing)
  start(runtime, call, () => writeAll(call, handler.serverStream(call.request, context)), onFailure, endWith(call, context))
}

/** @internal */
export const bidi = <R>(
  runtime: Runtime<R>,
  handler: { bidi(requests: Stream.Stream<unknown>, call: Call): Stream.Stream<unknown, unknown, R> },
  onFailure: OnFailure
): grpc.handleBidiStreamingCall<unknown, unknown> =>
(call) => {
  const context = new CallContext(call, runtime.closing)
  start(runtime, call, () => writeAll(call, handler.bidi(requests(call), context)), onFailure, endWith(call, context))
}

// A read fails only once the call is over (cancelled, reset), when the fiber
// is being interrupted anyway: no error type for handlers to deal with.
const requests = (call: grpc.ServerReadableStream<unknown, unknown>): Stream.Stream<unknown> =>
  Stream.orDie(Stream.fromAsyncIterable<unknown, unknown>(call, (error) => error))

/** Writes the response stream, waiting for `drain` when the socket is full. */
const writeAll = <E, R>(
  call: Writable,
  responses: Stream.Stream<unknown, E, R>
): Effect.Effect<void, E, R> =>
  Stream.runForEachArray(responses, (messages) =>
    Effect.callback<void>((resume) => {
      let ready = true
      for (const message of messages) ready = call.write(message)
      if (ready) return resume(Effect.void)
      const onDrain = () => resume(Effect.void)
      call.once("drain", onDrain)
      return Effect.sync(() => void call.removeListener("drain", onDrain))
    }))
