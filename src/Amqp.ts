/**
 * Consume a RabbitMQ queue (AMQP 0-9-1, `amqplib`) with a `Worker` pool,
 * keeping the brokers' stop contract (docs/brokers.md):
 *
 * 1. At the quit event intake stops: the consumer is cancelled by its tag
 *    (`basic.cancel`, never by closing a shared channel), and deliveries
 *    that no unit began — the prefetched ones, and any that cross the
 *    cancel — are handed back at once with `nack` and requeue: RabbitMQ
 *    gives them to another consumer within milliseconds, not when this
 *    connection closes.
 * 2. Units in flight finish, counted in the report, until the drain
 *    deadline; then each is cut (its fiber interrupted; a {@link promise}
 *    handler's `AbortSignal` aborts) and its message handed back the same
 *    way.
 * 3. A message is acked only after its unit succeeded; the ack is sent inside
 *    the unit. The connection is a closer of its own (`<name> connection`),
 *    closed after the pool: the channel's close waits for RabbitMQ's
 *    CloseOk, which comes after every ack sent before it — no ack is lost
 *    to a closed channel (amqplib #271).
 * 4. Delivery is at least once. The duplicate window: a SIGKILL (or a lost
 *    connection) after a unit succeeded and before RabbitMQ received its ack
 *    — the message is requeued when the connection drops and runs again,
 *    marked `redelivered`. After a SIGTERM none runs twice. A failed unit
 *    follows the worker's policy: `Worker.retry` runs it again in place;
 *    when the policy gives up, the message is `nack`ed without requeue —
 *    dead-lettered when the queue has a dead-letter exchange
 *    (`x-dead-letter-exchange`), dropped otherwise. With `Worker.failApp` it
 *    is handed back instead.
 *
 * RabbitMQ's own timeout on an unacked delivery (`consumer_timeout`, 30
 * minutes by default) must exceed the drain timeout; the server does not
 * tell a client its value, so it is not checked here. A connection lost
 * while running fails the app (`Worker`'s source failure): RabbitMQ
 * requeues what this consumer held.
 *
 * `amqplib` is an optional peer dependency: install it to use this entry
 * point (`effect-graceful/Amqp`).
 *
 * @since 0.1.0
 */
import type { ConsumeMessage, Options as AmqpOptions, SocketOptions } from "amqplib"
import type { Scope } from "effect"
import { Effect, Layer } from "effect"
import * as amqp from "./internal/brokers/amqp.ts"
import { BrokerError, HandlerError, SettingRefused } from "./internal/brokers/errors.ts"
import type { Delivery } from "./internal/brokers/intake.ts"
import * as shared from "./internal/brokers/source.ts"
import { InvalidOption } from "./internal/core/options.ts"
import type * as Quit from "./Quit.ts"
import * as Worker from "./Worker.ts"

export {
  /** A broker call failed: connecting, consuming, settling a message, closing. @category errors @since 0.1.0 */
  BrokerError,
  /** A `promise` handler rejected. @category errors @since 0.1.0 */
  HandlerError,
  /** A broker setting that cannot keep the contract. @category errors @since 0.1.0 */
  SettingRefused
}

/** A delivered message, as amqplib gives it. @category models @since 0.1.0 */
export type Message = ConsumeMessage

/**
 * Options of {@link consume}: those of a `Worker` pool, the connection, the
 * prefetch and the queue's declaration.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<E> extends Omit<Worker.Options<unknown, E>, "onGiveUp"> {
  /** `amqp://user:pass@host:port/vhost`, or amqplib's connect options. */
  readonly url: string | AmqpOptions.Connect
  /** amqplib's socket options (TLS, timeouts). */
  readonly socket?: SocketOptions | undefined
  /** Messages fetched ahead of the workers: the channel's prefetch is `workers + prefetch`. Default `workers`. */
  readonly prefetch?: number | undefined
  /** Declares the queue with these arguments (`assertQueue`); without it, the queue must exist (`checkQueue`). */
  readonly declare?: AmqpOptions.AssertQueue | undefined
}

/**
 * A handler written with Promises, for plain code: `signal` aborts when the
 * unit is cut; a rejection fails the unit with a {@link HandlerError}.
 *
 * @example
 * ```ts
 * import * as Amqp from "effect-graceful/Amqp"
 * const handler = Amqp.promise(async (message: Amqp.Message, signal: AbortSignal) => {
 *   await fetch("https://example.com/hook", { method: "POST", body: message.content, signal })
 * })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const promise: (
  handler: (message: Message, signal: AbortSignal) => PromiseLike<unknown>
) => (message: Message) => Effect.Effect<unknown, HandlerError> = shared.promise

/**
 * Starts a pool consuming `queue` for the lifetime of the current scope: the
 * connection (a closer named `<name> connection`) opens first and closes
 * after the pool. Fails with `BrokerError` when the broker cannot be reached
 * or the queue is missing, `InvalidOption` for bad options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Amqp from "effect-graceful/Amqp"
 * const emails = Amqp.consume("emails", (message) => Effect.log(message.content.toString()), {
 *   url: "amqp://guest:guest@localhost",
 *   workers: 8
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const consume = <E, R>(
  queue: string,
  handler: (message: Message) => Effect.Effect<unknown, E, R>,
  options: Options<E>
): Effect.Effect<Worker.Worker, BrokerError | InvalidOption, Quit.Quit | Scope.Scope | R> =>
  Effect.gen(function*() {
    const name = `amqp ${queue}`
    const workers = options.workers ?? 1
    const prefetch = options.prefetch ?? workers
    if (!Number.isSafeInteger(prefetch) || prefetch < 0) {
      return yield* new InvalidOption({ variable: `${name}: prefetch`, value: String(prefetch), reason: "expected an integer ≥ 0" })
    }
    const { closeTimeout, quit } = yield* shared.timeouts(name, options)
    const consumer = yield* amqp.make(name, {
      url: options.url,
      socket: options.socket,
      queue,
      prefetch: workers + prefetch,
      declare: options.declare
    }, yield* Effect.context<never>())
    yield* shared.connectionCloser(quit, name, "AMQP", consumer.close)
    const intake = consumer.intake
    return yield* Worker.consume(name, shared.source(intake, consumer.run, closeTimeout), intake.unit(handler), {
      ...options,
      onGiveUp: (delivery: Delivery<Message>, cause) => intake.reject(delivery, cause)
    })
  })

/**
 * {@link consume} as a layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Amqp from "effect-graceful/Amqp"
 * export const Emails = Amqp.layer("emails", (message) => Effect.log(message.content.toString()), { url: "amqp://localhost", workers: 4 })
 * // run it with Main.runMain, beside the layers it needs
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = <E, R>(
  queue: string,
  handler: (message: Message) => Effect.Effect<unknown, E, R>,
  options: Options<E>
): Layer.Layer<never, BrokerError | InvalidOption, Quit.Quit | R> => Layer.effectDiscard(consume(queue, handler, options))
