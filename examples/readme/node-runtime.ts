import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Closer, Http, Quit } from "effect-graceful"

const Web = Http.layerNode(() => createServer((_request, response) => response.end("hello")), { port: 8080, health: true })
const Database = Closer.layerDiscard("database", Effect.log("database closed"))

// DRAIN_DELAY, SHUTDOWN_TIMEOUT, … from the environment override these, as under Main.runMain.
const App = Web.pipe(Layer.provide(Database), Layer.provide(Quit.layer({ drainDelay: "5 seconds" })))

NodeRuntime.runMain(Layer.launch(App))
