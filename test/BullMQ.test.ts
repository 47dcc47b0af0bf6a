/**
 * The BullMQ source in this process, on a real redis-server: the lock check,
 * and the worker's failure policies in BullMQ's terms (retry in place, the
 * failed set when the policy gives up, back to wait with `failApp`).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Data, Effect, Exit, Schedule } from "effect"
import * as BullMQ from "../src/BullMQ.ts"
import * as Worker from "../src/Worker.ts"
import { bullmq as kit } from "./support/brokerKits.ts"
import type { Broker } from "./support/brokers.ts"
import { runPool } from "./support/inProcess.ts"

let broker: Broker
beforeAll(async () => {
  broker = await kit.start()
}, 120_000)
afterAll(() => broker?.stop(), 30_000)

class Flaky extends Data.TaggedError("Flaky")<{ readonly id: number }> {}

const connection = () => ({ host: "127.0.0.1", port: broker.port, maxRetriesPerRequest: null })
const queueOf = (name: string) => new Queue(name, { connection: connection() })
let n = 0
const fresh = async (ids: ReadonlyArray<number>) => {
  const name = `unit${n++}`
  await kit.publish(broker.url, name, ids)
  return { name, queue: queueOf(name) }
}

describe("BullMQ", () => {
  it("refuses a lock shorter than the drain timeout, naming both", async () => {
    const exit = await runPool(
      BullMQ.consume("never", () => Effect.void, { connection: connection(), lockDuration: "1 second" }),
      { quit: { drainTimeout: "5 seconds" } }
    )
    assert.isTrue(Exit.isFailure(exit))
    const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
    assert.strictEqual(error?._tag, "Fail")
    const failure = error?._tag === "Fail" ? error.error : undefined
    assert.instanceOf(failure, BullMQ.SettingRefused)
    assert.match(String((failure as Error).message), /lockDuration \(1s\).*drain timeout 5s/)
  })

  it("a unit that fails is retried in place by Worker.retry, then completed once", async () => {
    const { name, queue } = await fresh([7])
    let calls = 0
    const handler = (job: { readonly data: { readonly id: number } }) =>
      Effect.suspend(() => ++calls < 3 ? Effect.fail(new Flaky({ id: job.data.id })) : Effect.void)
    await runPool(
      BullMQ.consume(name, handler, { connection: connection(), onFailure: Worker.retry(Schedule.recurs(5)) }),
      { done: async () => (await queue.getCompletedCount()) === 1 }
    )
    assert.strictEqual(calls, 3)
    assert.deepInclude(await queue.getJobCounts(), { completed: 1, failed: 0, waiting: 0, active: 0 })
    await queue.close()
  })

  it("when the policy gives up, the job goes to BullMQ's failed set with the unit's error", async () => {
    const { name, queue } = await fresh([8])
    await runPool(
      BullMQ.consume(name, (job) => Effect.fail(new Flaky({ id: (job.data as { id: number }).id })), { connection: connection() }),
      { done: async () => (await queue.getFailedCount()) === 1 }
    )
    const [failed] = await queue.getFailed()
    assert.strictEqual(failed?.failedReason, `Flaky {"id":8}`)
    assert.deepInclude(await queue.getJobCounts(), { completed: 0, failed: 1, waiting: 0, active: 0 })
    await queue.close()
  })

  it("with Worker.failApp, the failed job is moved back to wait, not failed", async () => {
    const { name, queue } = await fresh([9])
    await runPool(
      BullMQ.consume(name, () => Effect.fail(new Flaky({ id: 9 })), { connection: connection(), onFailure: Worker.failApp }),
      { done: async () => (await queue.getActiveCount()) === 1 && (await queue.getWaitingCount()) === 0 }
    )
    assert.deepInclude(await queue.getJobCounts(), { completed: 0, failed: 0, waiting: 1, active: 0 })
    await queue.close()
  })
})
