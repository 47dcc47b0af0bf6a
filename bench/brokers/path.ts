/**
 * The per-message path of the broker sources without a broker: the shared
 * intake with an adapter whose ack is a counter, 10 workers, trivial units;
 * messages offered in bursts of 20 (a socket read of deliveries), one burst
 * per event-loop turn once the previous burst is acked — as a prefetch
 * window refills. Prints the CPU per message (µs, median of ROUNDS rounds of
 * MESSAGES): what the source adds to a client's own loop.
 *
 *   node bench/brokers/path.ts
 *
 * CPU time on a shared machine moves by ±30 %; instructions do not. Per
 * message, under callgrind: the difference between two runs of one round,
 * PATH_MESSAGES=10000 and 60000, divided by 50,000 (start-up and JIT warm-up
 * cancel out):
 *
 *   PATH_MESSAGES=60000 PATH_ROUNDS=1 valgrind --tool=callgrind node bench/brokers/path.ts
 */
import { Context, Effect, Layer } from "effect"
import { Quit, Worker } from "../../src/index.ts"
import * as shared from "../../src/internal/brokers/source.ts"
import { Intake } from "../../src/internal/brokers/intake.ts"
import type { Delivery } from "../../src/internal/brokers/intake.ts"

const MESSAGES = Number(process.env["PATH_MESSAGES"] ?? 200_000)
const ROUNDS = Number(process.env["PATH_ROUNDS"] ?? 7)
const BURST = 20

const round = Effect.gen(function*() {
  let acked = 0
  let seen = 0
  let wake: () => void = () => {}
  const intake = new Intake<number>("bench", {
    broker: "bench",
    stopFetching: () => Promise.resolve(),
    ack: () => {
      acked++
      if (acked % BURST === 0) wake()
    },
    handBack: () => {},
    reject: () => {}
  }, Context.empty() as Context.Context<never>)
  const unit = Effect.sync(() => void seen++)
  yield* Worker.consume("bench", shared.source(intake, () => {}, "1 second" as never), intake.unit(() => unit), {
    workers: 10,
    onGiveUp: (delivery: Delivery<number>, cause) => intake.reject(delivery, cause)
  })
  const cpu = yield* Effect.promise(() =>
    new Promise<number>((resolve) => {
      const start = process.cpuUsage()
      let sent = 0
      const burst = () => {
        if (sent >= MESSAGES) {
          const used = process.cpuUsage(start)
          return resolve((used.user + used.system) / MESSAGES)
        }
        for (let i = 0; i < BURST; i++) intake.offer(sent++)
      }
      wake = () => setImmediate(burst)
      burst()
    })
  )
  if (seen !== MESSAGES) throw new Error(`saw ${seen} of ${MESSAGES}`)
  return cpu
})

const results: Array<number> = []
for (let i = 0; i < ROUNDS; i++) {
  results.push(await Effect.runPromise(Effect.scoped(round).pipe(Effect.provide(Layer.orDie(Quit.layer())))))
}
const sorted = [...results].sort((a, b) => a - b)
console.log(`CPU per message: ${sorted[Math.floor(ROUNDS / 2)]!.toFixed(2)} µs (median of ${ROUNDS}; ${sorted.map((r) => r.toFixed(2)).join(", ")})`)
