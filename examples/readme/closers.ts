import { Context, Effect, Layer } from "effect"
import { DatabaseSync } from "node:sqlite"
import { Closer } from "effect-graceful"

// A resource as a service, closed after everything that uses it.
class Db extends Context.Service<Db, DatabaseSync>()("Db") {}
export const DbLive = Closer.layer(Db, "db", Effect.sync(() => new DatabaseSync("app.db")), (db) => () => db.close())

// A callback-style close with its own timeout: abandoned and named if it hangs.
declare const redis: { quit(callback: (error?: Error) => void): void }
export const Redis = Closer.layerDiscard("redis", Closer.callback((done) => redis.quit(done)), { timeout: "2 seconds" })

// Inside any layer: a close in its scope.
export const Cache = Layer.effectDiscard(Closer.add("cache", () => Promise.resolve(), { timeout: "1 second" }))
