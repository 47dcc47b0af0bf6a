/**
 * Consume a NATS JetStream durable pull consumer (`nats`) with a `Worker`
 * pool, keeping the brokers' stop contract (docs/brokers.md):
 *
 * 1. At the quit event intake stops: no pull request is sent any more, the
 *    inbox the pulls answer to is drained (UNSUB, then a flush), and every
 *    message no unit began — the prefetched ones, and those the server sent
 *    before it saw the UNSUB — is handed back at once with `nak`: the server
 *    redelivers it to another consumer within milliseconds, not after
 *    `AckWait` (30 s by default).
 * 2. Units in flight finish, counted in the report, until the drain
 *    deadline; then each is cut (its fiber interrupted; a {@link promise}
 *    handler's `AbortSignal` aborts) and its message `nak`ed the same way.
 * 3. A message is acked (`+ACK`) only after its unit succeeded, inside the
 *    unit. The connection is a closer of its own (`<name> connection`),
 *    closed after the pool: it flushes first, so every ack and nak has
 *    reached the server before it closes.
 * 4. Delivery is at least once. The duplicate window: a SIGKILL (or a lost
 *    connection) after a unit succeeded and before the server received its
 *    ack — the message is redelivered once `AckWait` has passed. While the
 *    process lives, every message it holds is marked in progress (`+WPI`)
 *    every third of `AckWait`, so a long unit is not redelivered while it
 *    runs. After a SIGTERM none runs twice. A failed unit follows the
 *    worker's policy: `Worker.retry` runs it again in place; when the policy
 *    gives up, the message is terminated (`+TERM`: never redelivered;
 *    JetStream has no dead-letter queue, the server publishes a
 *    `MSG_TERMINATED` advisory). With `Worker.failApp` it is `nak`ed instead.
 *
 * The consumer must ack explicitly, and its `AckWait` must last at least the
 * drain timeout: otherwise it is refused at start with a `SettingRefused`
 * error naming both.
 *
 * `nats` is an optional peer dependency: install it to use this entry point
 * (`effect-graceful/Nats`).
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Duration, Effect, Layer } from "effect"
import type { ConnectionOptions, JsMsg, StreamConfig } from "nats"
import { BrokerError, HandlerError, SettingRefused } from "./internal/brokers/errors.ts"
import type { Delivery } from "./internal/brokers/intake.ts"
import * as nats from "./internal/brokers/nats.ts"
import * as shared from "./internal/brokers/source.ts"
import { durationOr, InvalidOption } from "./internal/core/options.ts"
import type { DurationInput } from "./Options.ts"
import type * as Quit from "./Quit.ts"
import * as Worker from "./Worker.ts"

export {
  /** A broker call failed: connecting, pulling, closing. @category errors @since 0.1.0 */
  BrokerError,
  /** A `promise` handler rejected. @category errors @since 0.1.0 */
  HandlerError,
  /** A consumer setting that cannot keep the contract (an ack wait shorter than the drain timeout). @category errors @since 0.1.0 */
  SettingRefused
}

/** A JetStream message. @category models @since 0.1.0 */
export type Message = JsMsg

/**
 * Options of {@link consume}: those of a `Worker` pool, the connection, the
 * consumer and the prefetch.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<E> extends Omit<Worker.Options<unknown, E>, "onGiveUp"> {
  /** `nats://host:port`, or several. */
  readonly servers: string | ReadonlyArray<string>
  /** Any other connection option of `nats` (credentials, TLS, name). */
  readonly connection?: Omit<ConnectionOptions, "servers"> | undefined
  /** The durable pull consumer. Default: the stream's name. */
  readonly consumer?: string | undefined
  /** Messages fetched ahead of the workers. Default `workers`. */
  readonly prefetch?: number | undefined
  /** How long one pull request waits on the server. Default 5 s. */
  readonly expires?: DurationInput | undefined
  /**
   * Makes the stream (subjects default `[stream]`) and the durable consumer
   * (explicit acks, `ackWait`) when missing; without it both must exist.
   */
  readonly declare?: Partial<StreamConfig> | undefined
  /** `AckWait` of a consumer made here (`declare`). Default 30 s (the server's). */
  readonly ackWait?: DurationInput | undefined
}

/**
 * A handler written with Promises, for plain code: `signal` aborts when the
 * unit is cut; a rejection fails the unit with a {@link HandlerError}.
 *
 * @example
 * ```ts
 * import * as Nats from "effect-graceful/Nats"
 * const handler = Nats.promise(async (message: Nats.Message, signal: AbortSignal) => {
 *   await fetch("https://example.com/hook", { method: "POST", body: message.string(), signal })
 * })
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const promise: (
  handler: (message: Message, signal: AbortSignal) => PromiseLike<unknown>
) => (message: Message) => Effect.Effect<unknown, HandlerError> = shared.promise

/**
 * Starts a pool consuming the durable consumer of `stream` for the lifetime
 * of the current scope: the connection (a closer named `<name> connection`)
 * opens first and closes after the pool. Fails with `SettingRefused` for an
 * ack wait shorter than the drain timeout (or acks that are not explicit),
 * `BrokerError` when the server cannot be reached or the consumer is
 * missing, `InvalidOption` for bad options.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Nats from "effect-graceful/Nats"
 * const emails = Nats.consume("EMAILS", (message) => Effect.log(message.string()), {
 *   servers: "nats://localhost:4222",
 *   workers: 8
 * })
 * ```
 * @category combinators
 * @since 0.1.0
 */
export const consume = <E, R>(
  stream: string,
  handler: (message: Message) => Effect.Effect<unknown, E, R>,
  options: Options<E>
): Effect.Effect<Worker.Worker, BrokerError | SettingRefused | InvalidOption, Quit.Quit | Scope.Scope | R> =>
  Effect.gen(function*() {
    const consumerName = options.consumer ?? stream
    const name = `nats ${stream}/${consumerName}`
    const workers = options.workers ?? 1
    const prefetch = options.prefetch ?? workers
    if (!Number.isSafeInteger(prefetch) || prefetch < 0) {
      return yield* new InvalidOption({ variable: `${name}: prefetch`, value: String(prefetch), reason: "expected an integer ≥ 0" })
    }
    const { closeTimeout, drainTimeout, quit } = yield* shared.timeouts(name, options)
    const expires = yield* durationOr(options.expires, Duration.seconds(5), `${name}: expires`)
    const ackWait = options.ackWait === undefined ? undefined : yield* durationOr(options.ackWait, Duration.seconds(30), `${name}: ackWait`)
    const consumer = yield* nats.make(name, {
      connection: { ...options.connection, servers: typeof options.servers === "string" ? options.servers : [...options.servers] },
      stream,
      consumer: consumerName,
      capacity: workers + prefetch,
      expires,
      declare: options.declare,
      ackWait,
      drainTimeout
    }, yield* Effect.context<never>())
    yield* shared.connectionCloser(quit, name, "NATS", consumer.close)
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
 * import * as Nats from "effect-graceful/Nats"
 * export const Emails = Nats.layer("EMAILS", (message) => Effect.log(message.string()), { servers: "nats://localhost:4222", workers: 4 })
 * // run it with Main.runMain, beside the layers it needs
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer = <E, R>(
  stream: string,
  handler: (message: Message) => Effect.Effect<unknown, E, R>,
  options: Options<E>
): Layer.Layer<never, BrokerError | SettingRefused | InvalidOption, Quit.Quit | R> =>
  Layer.effectDiscard(consume(stream, handler, options))
