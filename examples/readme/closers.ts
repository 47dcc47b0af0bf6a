import { Context, Effect, Layer } from "effect"
import { DatabaseSync } from "node:sqlite"
import { Closer, Quit } from "effect-graceful"

// A resource as a service, closed after everything that uses it.
class Db extends Context.Service<Db, DatabaseSync>()("Db") {}
export const DbLive = Closer.layer(Db, "db", Effect.sync(() => new DatabaseSync("app.db")), (db) => () => db.close())

// A callback-style close with its own timeout: abandoned and named if it hangs.
declare const redis: { quit(callback: (error?: Error) => void): void }
export const Redis = Closer.layerDiscard("redis", Closer.callback((done) => redis.quit(done)), { timeout: "2 seconds" })

// Inside any layer: a scoped closer.
export const Cache = Layer.effectDiscard(Closer.add("cache", () => Promise.resolve(), { timeout: "1 second" }))

// Outside any layer (Go's RegisterCloser and RegisterStopFunc).
declare const tracer: { shutdown(): Promise<void> }
declare const legacyServer: { stopAccepting(): void }
export const registrations = Effect.all([
  Quit.registerCloser("tracer", () => tracer.shutdown(), { timeout: "2 seconds" }),
  Quit.registerStopFunc("legacy server", () => legacyServer.stopAccepting())
])
