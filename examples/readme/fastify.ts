import Fastify from "fastify"
import { Http, Main } from "effect-graceful"

const app = Fastify()
app.get("/", async () => "hello from fastify")
app.addHook("onClose", async () => console.log("database closed"))

Main.runMain(Http.layerFastify(() => app, { port: 8082, name: "fastify" }))
