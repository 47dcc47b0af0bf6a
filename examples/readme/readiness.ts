import { Effect, Layer } from "effect"
import { DatabaseSync } from "node:sqlite"
import { Closer, Health, Main } from "effect-graceful"

// The database, closed on shutdown, with a readiness check beside it; not ready until warm.
const Db = Layer.effectDiscard(Effect.gen(function*() {
  const db = yield* Closer.make("db", Effect.sync(() => new DatabaseSync("app.db")), (db) => () => db.close())
  yield* Health.check("db", Effect.sync(() => db.prepare("select 1").get()), { timeout: "200 millis" })
  yield* Health.markNotReady("warming the cache")
  yield* Effect.forkScoped(Effect.andThen(Effect.sleep("2 seconds"), Health.markReady))
}))

// Probes on a port of their own; `detail: true`: a 503 body says why (off by default).
Main.runMain(Layer.mergeAll(Db, Health.layer({ port: 9000, detail: true })))
