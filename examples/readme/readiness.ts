import { Effect, Layer } from "effect"
import { DatabaseSync } from "node:sqlite"
import { Closer, Health, Main } from "effect-graceful"

// The database, closed on shutdown, with a readiness check beside it.
const Db = Layer.effectDiscard(Effect.gen(function*() {
  const db = yield* Closer.make("db", Effect.sync(() => new DatabaseSync("app.db")), (db) => () => db.close())
  yield* Health.check("db", Effect.sync(() => db.prepare("select 1").get()), { timeout: "200 millis" })
}))

// Not ready until the cache is warm; alive all along.
const Cache = Layer.effectDiscard(Effect.gen(function*() {
  yield* Health.markNotReady("warming the cache")
  yield* Effect.forkScoped(Effect.andThen(Effect.sleep("2 seconds"), Health.markReady))
}))

// `detail: true`: a 503 body names why, for operators (off by default).
Main.runMain(Layer.mergeAll(Db, Cache, Health.layer({ port: 9000, detail: true })))
