/**
 * The NATS JetStream source in this process, on a real nats-server: the ack
 * wait check, the worker's failure policies in JetStream's terms (retry in
 * place, `term` when the policy gives up), and a unit cut at the drain
 * deadline: its `AbortSignal` aborts and its message is `nak`ed — delivered
 * again at once although the consumer's AckWait is 5 minutes.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Data, Effect, Exit, Schedule } from "effect"
import { connect } from "nats"
import * as Nats from "../src/Nats.ts"
import * as Worker from "../src/Worker.ts"
import { nats as kit } from "./support/brokerKits.ts"
import type { Broker } from "./support/brokers.ts"
import { runPool } from "./support/inProcess.ts"

let broker: Broker
beforeAll(async () => {
  broker = await kit.start()
}, 120_000)
afterAll(() => broker?.stop(), 30_000)

class Flaky extends Data.TaggedError("Flaky")<{ readonly body: string }> {}

const info = async (stream: string) => {
  const nc = await connect({ servers: broker.url })
  try {
    return await (await nc.jetstreamManager()).consumers.info(stream, stream)
  } finally {
    await nc.close()
  }
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>) => {
  const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
  return reason?._tag === "Fail" ? reason.error : undefined
}

describe("Nats", () => {
  it("refuses a consumer whose AckWait is shorter than the drain timeout, naming both", async () => {
    await kit.publish(broker.url, "SHORT", [1], 2_000)
    const exit = await runPool(Nats.consume("SHORT", () => Effect.void, { servers: broker.url }), {
      quit: { drainTimeout: "10 seconds" }
    })
    const error = failureOf(exit)
    assert.instanceOf(error, Nats.SettingRefused)
    assert.match((error as Error).message, /ack_wait.*\(2s \/ explicit\).*drain timeout 10s/)
  })

  it("a consumer that does not exist fails the start with a BrokerError", async () => {
    const error = failureOf(await runPool(Nats.consume("NOWHERE", () => Effect.void, { servers: broker.url })))
    assert.instanceOf(error, Nats.BrokerError)
    assert.match((error as Error).message, /NATS: opening consumer NOWHERE of stream NOWHERE failed/)
  })

  it("when the policy gives up, the message is terminated: not redelivered", async () => {
    await kit.publish(broker.url, "TERM", [5], 300_000)
    let calls = 0
    await runPool(
      Nats.consume("TERM", (message) => {
        calls++
        return Effect.fail(new Flaky({ body: message.string() }))
      }, { servers: broker.url, onFailure: Worker.retry(Schedule.recurs(1)) }),
      { done: async () => (await info("TERM")).ack_floor.stream_seq === 1 }
    )
    assert.strictEqual(calls, 2, "the first run and one retry, then the policy gave up")
    const after = await info("TERM")
    assert.deepInclude(after, { num_ack_pending: 0, num_redelivered: 0, num_pending: 0 })
  })

  it("a unit cut at the drain deadline sees its AbortSignal abort, and its message is redelivered at once", async () => {
    await kit.publish(broker.url, "CUT", [3], 300_000)
    const aborted: Array<string> = []
    await runPool(
      Nats.consume("CUT", Nats.promise((message, signal) =>
        new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => {
            aborted.push(message.string())
            resolve()
          })
        )
      ), { servers: broker.url }),
      { quit: { drainTimeout: "300 millis" }, done: async () => (await info("CUT")).num_ack_pending === 1, fire: true }
    )
    assert.deepStrictEqual(aborted, ["3"])
    // A second consumer gets it now, not after the 5-minute AckWait: the consumer's second delivery of
    // stream message 1 (nats-server 2.9 does not count a nak'd delivery in the redelivery count).
    const seen: Array<string> = []
    await runPool(Nats.consume("CUT", (message) =>
      Effect.sync(() => seen.push(`${message.string()} stream ${message.info.streamSequence} delivery ${message.info.deliverySequence}`)), {
      servers: broker.url
    }), { done: () => seen.length === 1 })
    assert.deepStrictEqual(seen, ["3 stream 1 delivery 2"])
  })
})
