/**
 * A hello-world server for the throughput benchmark, started by run.ts as a
 * child process so that it has a core of its own. Prints `READY <port>` and
 * answers `cpu` messages with its CPU time so far.
 *
 *   node bench/http/server.ts node              # raw node:http
 *   node bench/http/server.ts graceful-node     # the same handler through Http.layerNode
 *   node bench/http/server.ts effect            # HttpRouter on NodeHttpServer.layer
 *   node bench/http/server.ts graceful-effect   # the same router on Http.layer
 *
 * Both Effect servers run under Main.runMain, so that the pair differs by the
 * layer alone: the runner costs the same to both (Effect's own
 * NodeRuntime.runMain costs as much per request as Main.runMain does).
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import * as Http from "../../src/Http.ts"
import { Main } from "../../src/index.ts"
import { ready, readyWhenRunning } from "../support/ready.ts"
import { answerCpu } from "../support/child.ts"

answerCpu()

const hello = (_req: IncomingMessage, res: ServerResponse) => {
  res.setHeader("content-type", "text/plain")
  res.end("hello world")
}
const Routes = HttpRouter.add("GET", "/", HttpServerResponse.text("hello world"))
const listen = { port: 0, host: "127.0.0.1", backlog: 1024 } as const

const variant = process.argv[2]
const server = createServer(variant === "node" || variant === "graceful-node" ? hello : undefined)
const router = HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true })

switch (variant) {
  case "node":
    server.listen(listen, () => ready(server))
    break
  case "graceful-node":
    Main.runMain(Layer.merge(Http.layerNode(() => server, listen), readyWhenRunning(server)))
    break
  case "effect":
    Main.runMain(Layer.merge(router.pipe(Layer.provide(NodeHttpServer.layer(() => server, listen))), readyWhenRunning(server)))
    break
  case "graceful-effect":
    Main.runMain(Layer.merge(router.pipe(Layer.provide(Http.layer(() => server, listen))), readyWhenRunning(server)))
    break
  default:
    throw new Error(`unknown variant ${variant}`)
}
