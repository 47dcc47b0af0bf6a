/**
 * The servers of the exit benchmark (exit.ts), one per process: a handler
 * that answers `/slow` after 600 ms and everything else at once, stopped on
 * SIGTERM the way each library stops it. Prints `READY <port>`.
 *
 *   node bench/http/exitServer.ts <stoppable | terminus | http-terminator | close-with-grace | graceful-node | graceful-effect>
 */
import { createTerminus } from "@godaddy/terminus"
import closeWithGrace from "close-with-grace"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { createHttpTerminator } from "http-terminator"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import stoppable from "stoppable"
import * as Http from "../../src/Http.ts"
import { Main } from "../../src/index.ts"
import { ready, readyWhenRunning } from "../support/ready.ts"

export const SLOW_MS = 600

const handler = (req: IncomingMessage, res: ServerResponse) => {
  if (req.url === "/slow") setTimeout(() => res.end("slow"), SLOW_MS)
  else res.end("idle")
}
const listen = { port: 0, host: "127.0.0.1", backlog: 2048 } as const

const variant = process.argv[2]
switch (variant) {
  case "stoppable": {
    const server = stoppable(createServer(handler), 10_000)
    server.listen(listen, () => ready(server))
    process.once("SIGTERM", () => server.stop())
    break
  }
  case "terminus": {
    const server = createServer(handler)
    createTerminus(server, { signals: ["SIGTERM"], useExit0: true, timeout: 10_000 })
    server.listen(listen, () => ready(server))
    break
  }
  case "http-terminator": {
    const server = createServer(handler)
    const terminator = createHttpTerminator({ server, gracefulTerminationTimeout: 10_000 })
    server.listen(listen, () => ready(server))
    process.once("SIGTERM", () => void terminator.terminate())
    break
  }
  case "close-with-grace": {
    const server = createServer(handler)
    server.listen(listen, () => ready(server))
    closeWithGrace({ delay: 10_000 }, () => new Promise<void>((resolve) => server.close(() => resolve())))
    break
  }
  case "graceful-node": {
    const server = createServer(handler)
    Main.runMain(Layer.merge(Http.layerNode(() => server, listen), readyWhenRunning(server)))
    break
  }
  case "graceful-effect": {
    const server = createServer()
    const Routes = Layer.mergeAll(
      HttpRouter.add("GET", "/slow", Effect.sleep(SLOW_MS).pipe(Effect.as(HttpServerResponse.text("slow")))),
      HttpRouter.add("GET", "/idle", HttpServerResponse.text("idle"))
    )
    const app = HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true })
    Main.runMain(Layer.merge(app.pipe(Layer.provide(Http.layer(() => server, listen))), readyWhenRunning(server)))
    break
  }
  default:
    throw new Error(`unknown variant ${variant}`)
}
