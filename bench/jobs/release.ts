/**
 * A role in bench:jobs' release-to-pickup measure, a process of its own on
 * the queue at JOBS_DB:
 *
 *   ROLE=holder  one worker whose job never ends: prints CLAIMED when it
 *                starts it; on SIGTERM the job is cut at the drain deadline
 *                (DRAIN_TIMEOUT) and its claim given back when the queue closes.
 *   ROLE=taker   one idle worker (woken by NOTIFY on PostgreSQL; polling every
 *                POLL_MS on SQLite): prints READY, then PICKED <epoch ms> when it
 *                starts the job.
 */
import { Duration, Effect, Layer } from "effect"
import { JobQueue, Main } from "../../src/index.ts"

const role = process.env["ROLE"]
const Queue = JobQueue.layer({ path: process.env["JOBS_DB"]!, pollInterval: Duration.millis(Number(process.env["POLL_MS"] ?? 3_600_000)) })

const Holder = JobQueue.layerWorker("holder", () => Effect.andThen(Effect.sync(() => console.log("CLAIMED")), Effect.never))
const Taker = JobQueue.layerWorker("taker", () => Effect.sync(() => console.log(`PICKED ${Date.now()}`))).pipe(
  Layer.tap(() => Effect.sync(() => console.log("READY")))
)

Main.runMain((role === "holder" ? Holder : Taker).pipe(Layer.provide(Queue)))
