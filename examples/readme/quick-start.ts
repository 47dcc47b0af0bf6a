import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { Closer, Http, Main, Worker } from "effect-graceful"

// An HTTP API on PORT (default 3000): readiness fails at the quit event, requests in flight
// finish, idle keep-alive sockets close, the drain ends the moment its last request does.
const Api = HttpRouter.serve(HttpRouter.add("GET", "/", HttpServerResponse.text("hello"))).pipe(
  Layer.provide(Http.layerConfig(() => createServer(), { health: true }))
)

// A background worker: finishes the unit it is running, then stops.
const Ticker = Worker.layerLoop("ticker", Effect.log("tick"), { spaced: "1 second" })

// A resource closed after everything that uses it, under its own timeout.
const Database = Closer.layerDiscard("database", Effect.log("database closed"), { timeout: "2 seconds" })

Main.runMain(Layer.mergeAll(Api, Ticker).pipe(Layer.provide(Database)), { drainDelay: "5 seconds" })
