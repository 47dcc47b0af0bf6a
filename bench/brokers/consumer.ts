/**
 * One consumer of the broker benchmark, in a process of its own:
 *
 *   node bench/brokers/consumer.ts <BullMQ|AMQP|NATS> <source|client> <url> <queue> <messages> <concurrency>
 *
 * `source`: the library's broker source (`BullMQ.consume`, `Amqp.consume`,
 * `Nats.consume`) with `concurrency` workers and the module's default
 * prefetch, a trivial unit (count it). `client`: the client's own consumer
 * loop at the same concurrency and prefetch — a BullMQ `Worker` with an
 * async processor, an amqplib consumer that acks each delivery, a `nats`
 * `consume()` iterator that acks each message. Prints
 * `DONE <milliseconds from the first message to the last> <CPU milliseconds in that time>`
 * and exits.
 */
import { connect as amqpConnect } from "amqplib"
import { Worker as BullWorker } from "bullmq"
import { Effect, Layer } from "effect"
import { connect as natsConnect } from "nats"
import * as Amqp from "../../src/Amqp.ts"
import * as BullMQ from "../../src/BullMQ.ts"
import { Quit } from "../../src/index.ts"
import * as Nats from "../../src/Nats.ts"

const [broker, mode, url, queue, total, concurrencyText] = process.argv.slice(2) as [string, string, string, string, string, string]
const messages = Number(total)
const concurrency = Number(concurrencyText)
let first = 0
let firstCpu = { user: 0, system: 0 }
let count = 0
let finish: () => void = () => {}
const done = new Promise<void>((resolve) => finish = resolve)
const seen = () => {
  if (count++ === 0) {
    first = performance.now()
    firstCpu = process.cpuUsage()
  }
  if (count === messages) finish()
}
const redis = () => ({ host: "127.0.0.1", port: Number(new URL(url).port), maxRetriesPerRequest: null })

const client = async () => {
  if (broker === "BullMQ") {
    const worker = new BullWorker(queue, async () => seen(), { connection: redis(), concurrency })
    await done
    await worker.close()
  } else if (broker === "AMQP") {
    const model = await amqpConnect(url)
    const channel = await model.createChannel()
    await channel.prefetch(2 * concurrency)
    await channel.consume(queue, (message) => {
      if (message === null) return
      seen()
      channel.ack(message)
    })
    await done
    await model.close()
  } else {
    const nc = await natsConnect({ servers: url })
    const consumer = await nc.jetstream().consumers.get(queue, queue)
    const iterator = await consumer.consume({ max_messages: 2 * concurrency })
    void (async () => {
      for await (const message of iterator) {
        seen()
        message.ack()
      }
    })()
    await done
    await iterator.close()
    await nc.drain()
  }
}

const source = () => {
  const unit = Effect.sync(seen)
  const pool = broker === "BullMQ"
    ? BullMQ.consume(queue, () => unit, { connection: redis(), workers: concurrency })
    : broker === "AMQP"
    ? Amqp.consume(queue, () => unit, { url, workers: concurrency })
    : Nats.consume(queue, () => unit, { servers: url, workers: concurrency })
  return Effect.runPromise(
    Effect.scoped(Effect.andThen(pool, Effect.promise(() => done))).pipe(Effect.provide(Layer.orDie(Quit.layer())))
  )
}

await (mode === "source" ? source() : client())
const cpu = process.cpuUsage(firstCpu)
console.log(`DONE ${(performance.now() - first).toFixed(1)} ${((cpu.user + cpu.system) / 1000).toFixed(1)}`)
process.exit(0)

