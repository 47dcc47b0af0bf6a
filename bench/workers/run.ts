/**
 * Worker benchmarks: how long from the quit event until 10,000 idle workers
 * have stopped, how much memory an idle worker costs, and what running each
 * unit in a fiber of its own costs in throughput.
 *
 *   npm run bench:workers     # writes bench/workers/results.md and results.json
 *
 * Each figure is the median of ROUNDS runs in this one process, with a forced
 * GC before each memory reading.
 */
import { Deferred, Effect, Exit, Fiber, Layer, Queue, type Scope } from "effect"
import { writeFileSync } from "node:fs"
import { availableParallelism, cpus } from "node:os"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { type Options, Quit, Shutdown } from "../../src/index.ts"
import * as Worker from "../../src/Worker.ts"

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

const WORKERS = 10_000
const ROUNDS = 5
const UNITS = 100_000
const POOL = 100

type Kind = "queue take" | "poll interval" | "pause between units"

const pool = (kind: Kind) => {
  switch (kind) {
    case "queue take":
      return Effect.flatMap(Queue.unbounded<number>(), (queue) =>
        Worker.consume("bench", Worker.fromQueue(queue), () => Effect.void, { workers: WORKERS }))
    case "poll interval":
      return Worker.consume("bench", Worker.poll(Effect.succeedNone, { interval: "1 hour" }), () => Effect.void, {
        workers: WORKERS
      })
    case "pause between units":
      return Worker.loop("bench", Effect.void, { workers: WORKERS, spaced: "1 hour" })
  }
}

const heapUsed = () => {
  gc()
  return process.memoryUsage().heapUsed
}

/** Starts 10,000 idle workers in a program run by `Shutdown.run`, fires the quit event, times the stop. */
const idleRound = (kind: Kind) =>
  Effect.gen(function*() {
    const before = heapUsed()
    const ready = yield* Deferred.make<{ readonly worker: Worker.Worker; readonly startMs: number }>()
    const program = Shutdown.launch(Layer.effectDiscard(Effect.gen(function*() {
      const t0 = performance.now()
      const worker = yield* pool(kind)
      yield* Deferred.succeed(ready, { worker, startMs: performance.now() - t0 })
    })))
    const running = yield* Effect.forkChild(Shutdown.run(program), { startImmediately: true })
    const { startMs, worker } = yield* Deferred.await(ready)
    yield* Effect.sleep("50 millis")
    const bytesPerWorker = (heapUsed() - before) / WORKERS
    if ((yield* worker.running) !== WORKERS) throw new Error("not all workers started")
    const t1 = performance.now()
    yield* Quit.fire("bench")
    yield* worker.awaitStopped
    const stoppedMs = performance.now() - t1
    const report = yield* Fiber.join(running)
    const shutdownMs = performance.now() - t1
    if (report.exitCode !== 0 || (yield* worker.running) !== 0) throw new Error("unclean stop")
    return { startMs, stoppedMs, shutdownMs, bytesPerWorker }
  }).pipe(Effect.provide(Quit.layer({ drainDelay: 0 })))

/** Consumes 100,000 trivial units with `workers` fibers; `run` starts them; resolves when all ran. */
const consumeAll = (start: (queue: Queue.Queue<number>, unit: Effect.Effect<void>) => Effect.Effect<unknown, Options.InvalidOption, Scope.Scope | Quit.Quit>) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<number>()
    const done = yield* Deferred.make<void>()
    let processed = 0
    yield* start(queue, Effect.sync(() => {
      if (++processed === UNITS) Deferred.doneUnsafe(done, Exit.void)
    }))
    const t0 = performance.now()
    yield* Queue.offerAll(queue, Array.from({ length: UNITS }, (_, n) => n))
    yield* Deferred.await(done)
    return performance.now() - t0
  }).pipe(Effect.scoped, Effect.provide(Quit.layer()))

/** 100,000 trivial units through a pool of 100, against a bare loop of 100 fibers on the same queue. */
const throughputRound = Effect.all({
  poolMs: consumeAll((queue, unit) => Worker.consume("throughput", Worker.fromQueue(queue), () => unit, { workers: POOL })),
  bareMs: consumeAll((queue, unit) =>
    Effect.forEach(Array.from({ length: POOL }), () => Effect.forkScoped(Effect.forever(Effect.andThen(Queue.take(queue), unit))))
  )
})

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const medians = <K extends string>(rounds: ReadonlyArray<Record<K, number>>): Record<K, number> =>
  Object.fromEntries(Object.keys(rounds[0]!).map((key) => [key, median(rounds.map((r) => r[key as K]))])) as Record<
    K,
    number
  >

const main = Effect.gen(function*() {
  const idle: Record<string, Record<"startMs" | "stoppedMs" | "shutdownMs" | "bytesPerWorker", number>> = {}
  for (const kind of ["queue take", "poll interval", "pause between units"] as const) {
    idle[kind] = medians(yield* Effect.forEach(Array.from({ length: ROUNDS }), () => idleRound(kind)))
  }
  const throughput = medians(yield* Effect.forEach(Array.from({ length: ROUNDS }), () => throughputRound))
  return { idle, throughput }
})

const results = await Effect.runPromise(main)
const round = (n: number, digits = 1) => Number(n.toFixed(digits))
const machine = `Node ${process.version}, ${cpus()[0]?.model ?? "unknown CPU"} × ${availableParallelism()}`
const rows = Object.entries(results.idle).map(([kind, r]) =>
  `| ${kind} | ${round(r.startMs)} | ${round(r.stoppedMs)} | ${round(r.shutdownMs)} | ${round(r.bytesPerWorker / 1024, 2)} |`
)
const markdown = [
  "# Worker benchmarks",
  "",
  `${machine}; median of ${ROUNDS} rounds; \`npm run bench:workers\`.`,
  "",
  `## ${WORKERS.toLocaleString("en")} idle workers`,
  "",
  "Each worker waits for its next item. *Stopped* is the time from the quit event until every worker fiber",
  "has ended; *shutdown* until `Shutdown.run` has written its report. Memory is the heap growth per worker",
  "after a forced GC (the fiber, its wait and its share of the pool's bookkeeping).",
  "",
  "| waiting on | start (ms) | quit → all stopped (ms) | quit → report (ms) | heap per idle worker (KiB) |",
  "| --- | --- | --- | --- | --- |",
  ...rows,
  "",
  `## Throughput: ${UNITS.toLocaleString("en")} trivial units, ${POOL} workers`,
  "",
  "A unit runs in its worker's own fiber, counted, interruptible by the cut and not by closing (only",
  "waits are): the price of that guarantee, per unit, against the loop one would write by hand.",
  `Ratio (units/s, pool ÷ bare loop): ${round(results.throughput.bareMs / results.throughput.poolMs, 2)}×.`,
  "",
  "| | ms | units/s |",
  "| --- | --- | --- |",
  `| \`Worker.consume\` from a \`Queue\` | ${round(results.throughput.poolMs)} | ${
    Math.round(UNITS / results.throughput.poolMs * 1000).toLocaleString("en")
  } |`,
  `| a bare loop: ${POOL} fibers \`Queue.take\` → unit (no counting, no graceful stop) | ${round(results.throughput.bareMs)} | ${
    Math.round(UNITS / results.throughput.bareMs * 1000).toLocaleString("en")
  } |`,
  ""
].join("\n")
const here = new URL(".", import.meta.url)
writeFileSync(new URL("results.md", here), markdown)
writeFileSync(new URL("results.json", here), JSON.stringify({ machine, workers: WORKERS, rounds: ROUNDS, ...results }, null, 2) + "\n")
console.log(markdown)
