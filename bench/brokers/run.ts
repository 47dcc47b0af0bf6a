/**
 * Broker benchmarks, in one run (`npm run bench:brokers`; writes
 * bench/brokers/results.md and results.json):
 *
 * 1. Throughput: 20,000 messages through each broker source with trivial
 *    units (bench/brokers/consumer.ts `source`), beside the client's own
 *    consumer loop at the same concurrency (`client`), each in a process of
 *    its own on the same freshly filled queue, alternating, median of
 *    ROUNDS. The goal: source ÷ client ≥ 0.95.
 * 2. Redelivery: the example consumer holds 5 messages (1 in a unit, 4
 *    prefetched) when it gets SIGTERM; a consumer of the client's own in
 *    this process takes what it hands back. The time from the signal to
 *    the first redelivery, beside the broker's own timeout for a message a
 *    consumer holds.
 *
 * Servers: the test brokers (test/support/brokers.ts) on free ports.
 */
import { connect as amqpConnect } from "amqplib"
import { Worker as BullWorker } from "bullmq"
import { spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { connect as natsConnect } from "nats"
import type { Broker } from "../../test/support/brokers.ts"
import { amqp, bullmq, type Kit, nats } from "../../test/support/brokerKits.ts"

const MESSAGES = 20_000
const CONCURRENCY = 10
const ROUNDS = 5
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const consumerFile = here("./consumer.ts")
const exampleFile = here("../../examples/consumer.ts")

const run = (args: ReadonlyArray<string>): Promise<{ readonly ms: number; readonly cpuMs: number }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [consumerFile, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => output += chunk.toString())
    child.stderr.on("data", (chunk: Buffer) => output += chunk.toString())
    child.on("close", (code) => {
      const match = /DONE ([\d.]+) ([\d.]+)/.exec(output)
      if (code === 0 && match !== null) resolve({ ms: Number(match[1]), cpuMs: Number(match[2]) })
      else reject(new Error(`consumer ${args.join(" ")} exited ${code}:\n${output}`))
    })
  })

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!

const throughput = async (kit: Kit, broker: Broker) => {
  const rates: Record<"source" | "client", Array<number>> = { source: [], client: [] }
  const cpu: Record<"source" | "client", Array<number>> = { source: [], client: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? ["client", "source"] as const : ["source", "client"] as const) {
      const queue = `bench${round}${mode}`
      await kit.publish(broker.url, queue, Array.from({ length: MESSAGES }, (_, i) => i + 1))
      const { cpuMs, ms } = await run([kit.name, mode, broker.url, queue, String(MESSAGES), String(CONCURRENCY)])
      rates[mode].push(Math.round((MESSAGES - 1) / (ms / 1000)))
      cpu[mode].push(Number((cpuMs * 1000 / MESSAGES).toFixed(1)))
    }
  }
  return {
    source: median(rates.source),
    client: median(rates.client),
    rounds: rates,
    cpuSource: median(cpu.source),
    cpuClient: median(cpu.client)
  }
}

/** A consumer of the client's own in this process; resolves with performance.now() at its first message. */
const firstDelivery = async (kit: Kit, url: string, queue: string): Promise<{ readonly at: Promise<number>; readonly close: () => Promise<void> }> => {
  let resolve: (at: number) => void = () => {}
  const at = new Promise<number>((r) => resolve = r)
  const seen = () => resolve(performance.now())
  if (kit.name === "BullMQ") {
    const worker = new BullWorker(queue, async () => seen(), { connection: { host: "127.0.0.1", port: Number(new URL(url).port), maxRetriesPerRequest: null } })
    await worker.waitUntilReady()
    return { at, close: () => worker.close() }
  }
  if (kit.name === "AMQP") {
    const model = await amqpConnect(url)
    const channel = await model.createChannel()
    await channel.consume(queue, (message) => {
      if (message === null) return
      seen()
      channel.ack(message)
    })
    return { at, close: () => model.close() }
  }
  const nc = await natsConnect({ servers: url })
  const iterator = await (await nc.jetstream().consumers.get(queue, queue)).consume({ max_messages: 10 })
  void (async () => {
    for await (const message of iterator) {
      seen()
      message.ack()
    }
  })()
  return { at, close: async () => {
    await iterator.close()
    await nc.close()
  } }
}

const BROKER_TIMEOUT: Record<Kit["name"], string> = {
  BullMQ: "30,000 ms lock (`lockDuration`), then a stalled check every 30,000 ms (`stalledInterval`)",
  AMQP: "when the consumer's connection closes: after its drain (here the 3 s drain deadline)",
  NATS: "30,000 ms (`AckWait`)"
}

const redelivery = async (kit: Kit, broker: Broker) => {
  const queue = `handback${Math.floor(Math.random() * 1e6)}`
  await kit.publish(broker.url, queue, [1, 2, 3, 4, 5])
  const child = spawn(process.execPath, [exampleFile], {
    env: {
      ...process.env,
      BROKER_URL: broker.url,
      QUEUE: queue,
      WORKERS: "1",
      PREFETCH: "4",
      JOB_MS: "60000",
      DRAIN_TIMEOUT: "3 seconds",
      RESULTS_DB: ":memory:"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => output += chunk.toString())
  child.stderr.on("data", (chunk: Buffer) => output += chunk.toString())
  const exited = new Promise<number>((resolve) => child.on("exit", () => resolve(performance.now())))
  while (!/READY/.test(output) || (await kit.waiting(broker.url, queue)) > 0) await sleep(25)
  await sleep(200)
  const b = await firstDelivery(kit, broker.url, queue)
  const sent = performance.now()
  child.kill("SIGTERM")
  const at = await b.at
  const exit = await exited
  await b.close()
  return { redeliveryMs: Math.round(at - sent), exitMs: Math.round(exit - sent) }
}

const only = process.env["BROKERS"]?.split(",")
const kits = [bullmq, amqp, nats].filter((kit) => only === undefined || only.includes(kit.name))
const results: Array<Record<string, unknown>> = []
for (const kit of kits) {
  const broker = await kit.start()
  try {
    const rate = await throughput(kit, broker)
    const back = await redelivery(kit, broker)
    results.push({ broker: kit.name, ...rate, ratio: Number((rate.source / rate.client).toFixed(2)), ...back })
    console.log(JSON.stringify(results[results.length - 1]))
  } finally {
    await broker.stop()
  }
}

const machine = `Node ${process.versions.node}, ${cpus()[0]?.model.trim()} × ${cpus().length}`
const lines = [
  "# Broker benchmarks",
  "",
  `${machine}; \`npm run bench:brokers\`; the brokers from Debian's packages (redis-server 7.0, RabbitMQ 3.10, nats-server 2.9), on loopback.`,
  "",
  `## Throughput: ${MESSAGES.toLocaleString("en")} messages, trivial units, concurrency ${CONCURRENCY}`,
  "",
  `Each consumer in a process of its own on a freshly filled queue, alternating; median of ${ROUNDS} rounds. The client's own loop: a`,
  "BullMQ `Worker` with an async processor (concurrency 10); an amqplib consumer acking each delivery (prefetch 20); a `nats`",
  "`consume()` iterator acking each message (max_messages 20). The source: the module's `consume` with 10 workers and its",
  "default prefetch (BullMQ 0, AMQP and NATS 10), each message a counted unit acked after it.",
  "",
  "| broker | source (msg/s) | client's own loop (msg/s) | source ÷ client | CPU per message, source / client (µs) | rounds (source / client) |",
  "| --- | ---: | ---: | ---: | ---: | --- |",
  ...results.map((r) => {
    const rounds = r["rounds"] as { source: Array<number>; client: Array<number> }
    return `| ${r["broker"]} | ${Number(r["source"]).toLocaleString("en")} | ${Number(r["client"]).toLocaleString("en")} | ${r["ratio"]}× | ${
      r["cpuSource"]
    } / ${r["cpuClient"]} | ${
      rounds.source.join(", ")
    } / ${rounds.client.join(", ")} |`
  }),
  "",
  `Load average when the run ended: ${loadavg().map((l) => l.toFixed(1)).join(", ")} (2 cores shared with other sessions): the`,
  "rates move by ±30 % from round to round; CPU per message (the consumer process's own, from its first message to its last)",
  "depends less on the load.",
  "",
  "## SIGTERM to redelivery",
  "",
  "The example consumer holds 5 messages (1 in a 60 s unit, 4 prefetched; drain timeout 3 s) when it gets SIGTERM; a",
  "consumer of the client's own takes what it hands back. Redelivery: from the signal to that consumer's first message.",
  "",
  "| broker | SIGTERM → redelivery (ms) | SIGTERM → exit (ms) | the broker's own timeout for a held message |",
  "| --- | ---: | ---: | --- |",
  ...results.map((r) => `| ${r["broker"]} | ${r["redeliveryMs"]} | ${r["exitMs"]} | ${BROKER_TIMEOUT[r["broker"] as Kit["name"]]} |`),
  ""
]
writeFileSync(here("./results.md"), lines.join("\n"))
writeFileSync(here("./results.json"), JSON.stringify({ machine, messages: MESSAGES, concurrency: CONCURRENCY, rounds: ROUNDS, results }, null, 2) + "\n")
console.log(lines.join("\n"))
process.exit(0)
