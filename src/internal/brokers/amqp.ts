/**
 * RabbitMQ (amqplib) behind the shared intake: one connection, one channel,
 * one consumer (by its tag) with `prefetch` bounding the unacked deliveries.
 *
 * - ack: `channel.ack(message)`, sent before the channel closes: RabbitMQ
 *   handles frames in order, and the channel's close waits for its CloseOk.
 * - hand back: `channel.nack(message, false, true)` — requeued at its place,
 *   given to another consumer at once, marked `redelivered`.
 * - reject: `channel.nack(message, false, false)` — dead-lettered if the
 *   queue has a dead-letter exchange, dropped otherwise.
 * - stop fetching: `channel.cancel(consumerTag)` — sent before any hand-back
 *   (frames are handled in order, so RabbitMQ never gives a handed-back
 *   message to this consumer again); deliveries that cross it are handed
 *   back as they arrive.
 *
 * @internal
 */
import type { ChannelModel, ConsumeMessage, Options, SocketOptions } from "amqplib"
import { connect } from "amqplib"
import type { Context } from "effect"
import { Effect } from "effect"
import { BrokerError } from "./errors.ts"
import { Intake } from "./intake.ts"

/** The connection and channel behind an intake. @internal */
export interface Consumer {
  readonly intake: Intake<ConsumeMessage>
  /** Starts consuming; a consumer the broker cancels, or a connection lost, fails the intake. */
  readonly run: () => void
  /** Closes the channel (its CloseOk comes after every ack sent before it), then the connection. */
  readonly close: () => Promise<void>
}

/** @internal */
export interface Settings {
  readonly url: string | Options.Connect
  readonly socket?: SocketOptions | undefined
  readonly queue: string
  readonly prefetch: number
  readonly declare: Options.AssertQueue | undefined
}

const fail = (operation: string) => (cause: unknown) => new BrokerError({ broker: "AMQP", operation, cause })

/** Connects, opens the channel, sets the prefetch and checks (or declares) the queue. @internal */
export const make = (name: string, settings: Settings, context: Context.Context<never>): Effect.Effect<Consumer, BrokerError> =>
  Effect.tryPromise({
    try: async () => {
      const model: ChannelModel = await connect(settings.url, settings.socket)
      try {
        // A refused declaration closes the channel with an 'error' event; the promise says it too.
        model.on("error", () => {})
        const channel = await model.createChannel()
        channel.on("error", () => {})
        await channel.prefetch(settings.prefetch)
        if (settings.declare === undefined) await channel.checkQueue(settings.queue)
        else await channel.assertQueue(settings.queue, settings.declare)
        return { model, channel }
      } catch (error) {
        await model.close().catch(() => {})
        throw error
      }
    },
    catch: fail(`connecting and opening queue ${settings.queue}`)
  }).pipe(Effect.map(({ channel, model }): Consumer => {
    // The tag once the broker has confirmed the consumer; until then, the confirmation.
    let consumer: { readonly _tag: "Idle" } | { readonly _tag: "Starting"; readonly tag: Promise<string> } | {
      readonly _tag: "Consuming"
      readonly tag: string
    } = { _tag: "Idle" }
    let closing = false
    const intake = new Intake<ConsumeMessage>(name, {
      broker: "AMQP",
      // Synchronous when the tag is known: the cancel must leave before the hand-backs (nacks) that follow it.
      stopFetching: () => {
        if (consumer._tag === "Idle") return Promise.resolve()
        if (consumer._tag === "Consuming") return channel.cancel(consumer.tag).then(() => {})
        return consumer.tag.then((tag) => channel.cancel(tag)).then(() => {})
      },
      ack: (message) => channel.ack(message),
      handBack: (message) => channel.nack(message, false, true),
      reject: (message) => channel.nack(message, false, false)
    }, context)
    const lost = (operation: string) => (error?: unknown) => {
      if (!closing) intake.fail(fail(operation)(error ?? "closed by the broker"))
    }
    // Without listeners, an 'error' event would crash the process.
    model.on("error", (error: Error) => intake.log(`connection error: ${error.message}`))
    channel.on("error", (error: Error) => intake.log(`channel error: ${error.message}`))
    model.on("close", lost("the connection"))
    channel.on("close", lost("the channel"))
    return {
      intake,
      run: () => {
        const tag = channel.consume(settings.queue, (message) => {
          if (message === null) lost("consuming (the broker cancelled the consumer)")()
          else intake.offer(message)
        }, { noAck: false }).then((reply) => {
          consumer = { _tag: "Consuming", tag: reply.consumerTag }
          return reply.consumerTag
        })
        consumer = { _tag: "Starting", tag }
        tag.catch((cause: unknown) => intake.fail(fail(`consuming ${settings.queue}`)(cause)))
      },
      close: async () => {
        closing = true
        try {
          await channel.close()
        } finally {
          await model.close()
        }
      }
    }
  }))
