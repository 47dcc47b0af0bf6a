/**
 * What the broker tests and benchmarks need of each broker, behind one
 * shape: start a server, fill a queue with integer ids, count what is still
 * waiting — and the results table the example consumer writes.
 */
import { connect as amqpConnect } from "amqplib"
import { Queue } from "bullmq"
import { AckPolicy, connect as natsConnect, nanos, StringCodec } from "nats"
import { DatabaseSync } from "node:sqlite"
import * as servers from "./brokers.ts"

export interface Kit {
  readonly name: "BullMQ" | "AMQP" | "NATS"
  readonly start: () => Promise<servers.Broker>
  /**
   * Makes the queue (for NATS: the stream and its durable consumer, with
   * `ackWaitMs`) and puts the ids in it, in order.
   */
  readonly publish: (url: string, queue: string, ids: ReadonlyArray<number>, ackWaitMs?: number) => Promise<void>
  /** Messages no consumer holds: waiting to be delivered. */
  readonly waiting: (url: string, queue: string) => Promise<number>
  /**
   * Once no consumer is connected: messages not acknowledged — waiting, or
   * held unacked (BullMQ: active; RabbitMQ requeues what a closed
   * connection held; JetStream: pending acks).
   */
  readonly unacked: (url: string, queue: string) => Promise<number>
  /** The pool's row in the shutdown report. */
  readonly row: (queue: string) => string
}

const redisPort = (url: string) => Number(new URL(url).port)

export const bullmq: Kit = {
  name: "BullMQ",
  start: servers.redis,
  publish: async (url, queue, ids) => {
    const q = new Queue(queue, { connection: { host: "127.0.0.1", port: redisPort(url) } })
    try {
      for (let i = 0; i < ids.length; i += 1000) {
        await q.addBulk(ids.slice(i, i + 1000).map((id) => ({ name: "job", data: { id } })))
      }
    } finally {
      await q.close()
    }
  },
  waiting: async (url, queue) => {
    const q = new Queue(queue, { connection: { host: "127.0.0.1", port: redisPort(url) } })
    try {
      return await q.getWaitingCount()
    } finally {
      await q.close()
    }
  },
  unacked: async (url, queue) => {
    const q = new Queue(queue, { connection: { host: "127.0.0.1", port: redisPort(url) } })
    try {
      const counts = await q.getJobCounts("waiting", "active", "delayed", "prioritized")
      return Object.values(counts).reduce((a, b) => a + b, 0)
    } finally {
      await q.close()
    }
  },
  row: (queue) => `bullmq ${queue}`
}

export const amqp: Kit = {
  name: "AMQP",
  start: servers.rabbitmq,
  publish: async (url, queue, ids) => {
    const model = await amqpConnect(url)
    try {
      const channel = await model.createConfirmChannel()
      await channel.assertQueue(queue, { durable: true })
      for (const id of ids) channel.sendToQueue(queue, Buffer.from(String(id)), { persistent: true })
      await channel.waitForConfirms()
    } finally {
      await model.close()
    }
  },
  waiting: async (url, queue) => {
    const model = await amqpConnect(url)
    try {
      const channel = await model.createChannel()
      return (await channel.checkQueue(queue)).messageCount
    } finally {
      await model.close()
    }
  },
  unacked: (url, queue) => amqp.waiting(url, queue),
  row: (queue) => `amqp ${queue}`
}

const codec = StringCodec()

export const nats: Kit = {
  name: "NATS",
  start: servers.nats,
  publish: async (url, queue, ids, ackWaitMs) => {
    const nc = await natsConnect({ servers: url })
    try {
      const jsm = await nc.jetstreamManager()
      await jsm.streams.info(queue).catch(() => jsm.streams.add({ name: queue, subjects: [queue] }))
      await jsm.consumers.info(queue, queue).catch(() =>
        jsm.consumers.add(queue, {
          durable_name: queue,
          ack_policy: AckPolicy.Explicit,
          ...(ackWaitMs === undefined ? {} : { ack_wait: nanos(ackWaitMs) })
        })
      )
      const js = nc.jetstream()
      for (let i = 0; i < ids.length; i += 500) {
        await Promise.all(ids.slice(i, i + 500).map((id) => js.publish(queue, codec.encode(String(id)))))
      }
    } finally {
      await nc.close()
    }
  },
  waiting: async (url, queue) => {
    const nc = await natsConnect({ servers: url })
    try {
      const jsm = await nc.jetstreamManager()
      return (await jsm.consumers.info(queue, queue)).num_pending
    } finally {
      await nc.close()
    }
  },
  unacked: async (url, queue) => {
    const nc = await natsConnect({ servers: url })
    try {
      const info = await (await nc.jetstreamManager()).consumers.info(queue, queue)
      return info.num_pending + info.num_ack_pending
    } finally {
      await nc.close()
    }
  },
  row: (queue) => `nats ${queue}/${queue}`
}

export interface Row {
  readonly job: number
  readonly pid: number
}

/** The rows of the results table, in the order they were written (none if the file is not there yet). */
export const readResults = (path: string): ReadonlyArray<Row> => {
  let db: DatabaseSync
  try {
    db = new DatabaseSync(path, { readOnly: true, timeout: 10_000 })
  } catch {
    return []
  }
  try {
    return db.prepare("SELECT job, pid FROM results ORDER BY rowid").all() as unknown as Array<Row>
  } catch {
    return []
  } finally {
    db.close()
  }
}
