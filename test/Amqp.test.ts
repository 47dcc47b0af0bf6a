/**
 * The AMQP source in this process, on a real RabbitMQ: a missing queue, the
 * worker's failure policies in RabbitMQ's terms (retry in place, the
 * dead-letter exchange when the policy gives up), and a cut unit's
 * `AbortSignal` with its message handed back.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { connect } from "amqplib"
import { Data, Effect, Exit, Schedule } from "effect"
import * as Amqp from "../src/Amqp.ts"
import * as Worker from "../src/Worker.ts"
import { amqp as kit } from "./support/brokerKits.ts"
import type { Broker } from "./support/brokers.ts"
import { runPool } from "./support/inProcess.ts"

let broker: Broker
beforeAll(async () => {
  broker = await kit.start()
}, 180_000)
afterAll(() => broker?.stop(), 60_000)

class Flaky extends Data.TaggedError("Flaky")<{ readonly body: string }> {}

const counts = async (...queues: ReadonlyArray<string>) => {
  const model = await connect(broker.url)
  try {
    const channel = await model.createChannel()
    const result: Record<string, number> = {}
    for (const queue of queues) result[queue] = (await channel.checkQueue(queue)).messageCount
    return result
  } finally {
    await model.close()
  }
}

describe("Amqp", () => {
  it("a queue that does not exist fails the start with a BrokerError naming it", async () => {
    const exit = await runPool(Amqp.consume("missing-queue", () => Effect.void, { url: broker.url }))
    assert.isTrue(Exit.isFailure(exit))
    const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
    const error = reason?._tag === "Fail" ? reason.error : undefined
    assert.instanceOf(error, Amqp.BrokerError)
    assert.match((error as Error).message, /AMQP: connecting and opening queue missing-queue failed: .*NOT_FOUND/)
  })

  it("when the policy gives up, the message is nacked to the queue's dead-letter exchange", async () => {
    const model = await connect(broker.url)
    const channel = await model.createConfirmChannel()
    await channel.assertQueue("dead", { durable: true })
    const declare = { durable: true, arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead" } }
    await channel.assertQueue("work", declare)
    channel.sendToQueue("work", Buffer.from("41"))
    await channel.waitForConfirms()
    await model.close()
    let calls = 0
    await runPool(
      Amqp.consume("work", (message) => {
        calls++
        return Effect.fail(new Flaky({ body: message.content.toString() }))
      }, { url: broker.url, declare, onFailure: Worker.retry(Schedule.recurs(2)) }),
      { done: async () => (await counts("dead")).dead === 1 }
    )
    assert.strictEqual(calls, 3, "the first run and two retries, then the policy gave up")
    assert.deepStrictEqual(await counts("work", "dead"), { work: 0, dead: 1 })
  })

  it("a unit cut at the drain deadline sees its AbortSignal abort, and its message is requeued", async () => {
    await kit.publish(broker.url, "cut", [1])
    const aborted: Array<string> = []
    await runPool(
      Amqp.consume("cut", Amqp.promise((message, signal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => {
            aborted.push(message.content.toString())
            resolve()
          })
        )
      ), { url: broker.url }),
      { quit: { drainTimeout: "300 millis" }, done: async () => (await counts("cut")).cut === 0, fire: true }
    )
    assert.deepStrictEqual(aborted, ["1"])
    assert.deepStrictEqual(await counts("cut"), { cut: 1 }, "handed back to the queue")
  })
})
