/**
 * The Amqp source under a real SIGTERM (test/e2e/brokerScenario.ts): units in
 * flight finish or are cut at the drain deadline; prefetched and cut
 * messages are handed back and processed by a second consumer long before
 * the broker's own timeout; each message is processed once; exit 0.
 */
import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import type { Broker } from "../support/brokers.ts"
import { amqp as kit } from "../support/brokerKits.ts"
import { redelivery } from "./brokerScenario.ts"
import type { Child } from "./harness.ts"

let broker: Broker
const children: Array<Child> = []
beforeAll(async () => {
  broker = await kit.start()
}, 180_000)
afterAll(async () => {
  for (const child of children) child.process.kill("SIGKILL")
  await broker?.stop()
}, 60_000)

describe("Amqp under SIGTERM", () => {
  it("units in flight finish; the prefetched are handed back at once and processed by another consumer", () =>
    redelivery(kit, broker, "finish", children), 90_000)

  it("units past the drain deadline are cut and handed back with the prefetched", () =>
    redelivery(kit, broker, "cut", children), 90_000)
})
