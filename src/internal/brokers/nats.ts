/**
 * NATS JetStream (`nats`) behind the shared intake: a durable pull consumer
 * pulled through an inbox of our own, so that every message the server sends
 * is accounted for — the client's `consume()` iterator is not ended by a
 * drain (nats.node #574), and what a stopped iterator drops waits out
 * `AckWait`.
 *
 * - pull: `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with a batch of
 *   what the workers and the prefetch can hold and an expiry; what a request
 *   left undelivered comes back in its 408/409 status (`Nats-Pending-Messages`).
 * - ack: `+ACK`; the connection's close flushes it first.
 * - hand back: `-NAK` — redelivered at once, not after `AckWait`.
 * - reject: `+TERM` — never redelivered (JetStream has no dead-letter queue:
 *   the server publishes a `MSG_TERMINATED` advisory).
 * - stop fetching: the inbox is drained — UNSUB, then a flush: messages the
 *   server sent before it saw the UNSUB still arrive, and are handed back;
 *   a pull request left on the server has no interest any more and delivers
 *   nothing.
 * - every message held (buffered or in a unit) gets `+WPI` (working) every
 *   third of `AckWait`, so a long unit is not redelivered while it runs.
 *
 * @internal
 */
import type { Context } from "effect"
import { Duration, Effect } from "effect"
import type { ConnectionOptions, JsMsg, Msg, NatsConnection, StreamConfig, Subscription } from "nats"
import { AckPolicy, connect, createInbox, JSONCodec, nanos } from "nats"
import { toJsMsg } from "nats/lib/jetstream/jsmsg.js"
import { BrokerError, SettingRefused } from "./errors.ts"
import { Intake } from "./intake.ts"

/** @internal */
export interface Settings {
  readonly connection: ConnectionOptions
  readonly stream: string
  readonly consumer: string
  /** Workers plus prefetch: the most messages held at once. */
  readonly capacity: number
  /** How long a pull request waits on the server for messages. */
  readonly expires: Duration.Duration
  /** Makes the stream (with these settings) and the durable consumer when missing. */
  readonly declare: Partial<StreamConfig> | undefined
  /** The consumer's `AckWait` when it is made here. */
  readonly ackWait: Duration.Duration | undefined
  readonly drainTimeout: Duration.Duration
}

/** The connection and pull loop behind an intake. @internal */
export interface Consumer {
  readonly intake: Intake<JsMsg>
  readonly ackWait: Duration.Duration
  readonly run: () => void
  /** Flushes (every ack and nak reaches the server) and closes the connection. */
  readonly close: () => Promise<void>
}

const fail = (operation: string) => (cause: unknown) => new BrokerError({ broker: "NATS", operation, cause })
const codec = JSONCodec()

const setup = async (nc: NatsConnection, settings: Settings) => {
  const jsm = await nc.jetstreamManager()
  if (settings.declare !== undefined) {
    await jsm.streams.info(settings.stream).catch(() =>
      jsm.streams.add({ subjects: [settings.stream], ...settings.declare, name: settings.stream })
    )
    await jsm.consumers.info(settings.stream, settings.consumer).catch(() =>
      jsm.consumers.add(settings.stream, {
        durable_name: settings.consumer,
        ack_policy: AckPolicy.Explicit,
        ...(settings.ackWait === undefined ? {} : { ack_wait: nanos(Duration.toMillis(settings.ackWait)) })
      })
    )
  }
  return jsm.consumers.info(settings.stream, settings.consumer)
}

/** Connects, makes or checks the stream and consumer, and checks `AckWait` against the drain timeout. @internal */
export const make = (
  name: string,
  settings: Settings,
  context: Context.Context<never>
): Effect.Effect<Consumer, BrokerError | SettingRefused> =>
  Effect.gen(function*() {
    const nc = yield* Effect.tryPromise({ try: () => connect(settings.connection), catch: fail("connecting") })
    const closeNow = Effect.promise(() => nc.close().catch(() => {}))
    const info = yield* Effect.tryPromise({
      try: () => setup(nc, settings),
      catch: fail(`opening consumer ${settings.consumer} of stream ${settings.stream}`)
    }).pipe(Effect.tapError(() => closeNow))
    const ackWait = Duration.millis((info.config.ack_wait ?? 30_000_000_000) / 1_000_000)
    if (info.config.ack_policy !== AckPolicy.Explicit || Duration.isLessThan(ackWait, settings.drainTimeout)) {
      yield* closeNow
      return yield* Effect.fail(
        new SettingRefused({
          broker: "NATS",
          setting: `consumer ${settings.consumer}: ack_wait / ack_policy`,
          value: `${Duration.format(ackWait)} / ${info.config.ack_policy}`,
          against: `drain timeout ${Duration.format(settings.drainTimeout)}`,
          expected: "explicit acks, and an ack wait of at least the drain timeout"
        })
      )
    }
    return pullLoop(name, nc, settings, ackWait, context)
  })

const pullLoop = (
  name: string,
  nc: NatsConnection,
  settings: Settings,
  ackWait: Duration.Duration,
  context: Context.Context<never>
): Consumer => {
  const inbox = createInbox()
  const next = `$JS.API.CONSUMER.MSG.NEXT.${settings.stream}.${settings.consumer}`
  const request = (batch: number) =>
    codec.encode({ batch, expires: nanos(Duration.toMillis(settings.expires)) })
  let subscription: Subscription | undefined
  let requested = 0
  let stopping = false
  const threshold = Math.max(1, Math.floor(settings.capacity / 2))
  const pull = () => {
    if (stopping || subscription === undefined) return
    const free = settings.capacity - intake.held - requested
    if (free < threshold) return
    requested += free
    nc.publish(next, request(free), { reply: inbox })
  }
  const intake = new Intake<JsMsg>(name, {
    broker: "NATS",
    stopFetching: async () => {
      stopping = true
      await subscription?.drain()
    },
    ack: (message) => message.ack(),
    handBack: (message) => message.nak(),
    reject: (message) => message.term(),
    onSettled: pull
  }, context)
  const onMessage = (message: Msg) => {
    const status = message.headers?.code ?? 0
    if (status === 0) {
      requested = Math.max(0, requested - 1)
      intake.offer(toJsMsg(message))
      return
    }
    if (status === 100) return // an idle heartbeat
    // 404 no messages, 408 request expired, 409 limits or leadership change: what was left of the request.
    const left = Number(message.headers?.get("Nats-Pending-Messages") ?? "")
    requested = Number.isFinite(left) && left > 0 ? Math.max(0, requested - left) : 0
    if (status === 409 && /consumer (is )?deleted/i.test(message.headers?.description ?? "")) {
      intake.fail(fail("pulling")(`consumer ${settings.consumer} was deleted`))
      return
    }
    pull()
  }
  const every = Math.max(1, Math.floor(Duration.toMillis(ackWait) / 3))
  let working: NodeJS.Timeout | undefined
  return {
    intake,
    ackWait,
    run: () => {
      subscription = nc.subscribe(inbox, { callback: (error, message) => error === null ? onMessage(message) : intake.log(error.message) })
      working = setInterval(() => intake.forEachHeld((message) => message.working()), every).unref()
      nc.closed().then((error) => {
        if (!stopping) intake.fail(fail("the connection")(error ?? "closed"))
      })
      pull()
    },
    close: async () => {
      stopping = true
      clearInterval(working)
      await nc.flush().catch(() => {})
      await nc.close()
    }
  }
}
