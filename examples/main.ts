/**
 * The example service: a plain node:http server whose requests are counted, a
 * background worker that finishes its current unit, and a "database" closed
 * last — composed as layers and run by Main.runMain.
 *
 *   npm start                      # then Ctrl-C, or: kill -TERM <pid>
 *   curl 'localhost:8080/work?ms=3000' & sleep 0.5; kill -TERM <pid>
 *
 * Environment: PORT (8080), DRAIN_DELAY, DRAIN_TIMEOUT, SHUTDOWN_TIMEOUT, LOG_FORMAT.
 */
import { Config, Effect, Layer } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Main, Quit } from "../src/index.ts"

const Database = Layer.effectDiscard(Effect.gen(function*() {
  yield* Effect.log("database opened")
  yield* Quit.addCloser("database", Effect.sleep("50 millis").pipe(Effect.andThen(Effect.log("database closed"))))
}))

const Http = Layer.effectDiscard(Effect.gen(function*() {
  const port = yield* Config.Int("PORT").pipe(Config.withDefault(8080))
  const quit = yield* Quit.Quit
  const server = createServer()
  const requests = yield* Quit.group("http", {
    kind: "http",
    onStop: Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
      server.closeIdleConnections()
    }),
    onCut: Effect.sync(() => server.closeAllConnections())
  })
  server.on("request", (req, res) => {
    const done = requests.enterUnsafe()
    res.on("close", done)
    const ms = Number(new URL(req.url ?? "/", "http://x").searchParams.get("ms") ?? 0)
    setTimeout(() => {
      // While draining, tell keep-alive clients not to reuse this connection.
      if (quit.hasFired()) res.setHeader("connection", "close")
      res.end(`worked ${ms} ms\n`)
    }, ms)
  })
  yield* Effect.callback<void, Error>((resume) => {
    server.once("error", (error) => resume(Effect.fail(error)))
    server.listen(port, () => resume(Effect.void))
  })
  yield* Effect.log(`http listening on port ${(server.address() as AddressInfo).port}`)
}))

const Worker = Layer.effectDiscard(Effect.gen(function*() {
  const worker = yield* Quit.group("ticker", { kind: "worker" })
  const unit = Effect.sleep("1 second").pipe(Effect.andThen(Effect.logDebug("tick")))
  // Detached from the scope: the group's close stops the loop after its
  // current unit, and only the drain timeout may cut that unit.
  yield* Effect.gen(function*() {
    while (!(yield* worker.isClosing)) {
      yield* worker.track(unit)
    }
  }).pipe(Effect.forkDetach)
}))

Main.runMain(Layer.mergeAll(Http, Worker).pipe(Layer.provide(Database)))
