/**
 * A server of the scale benchmark (scale.ts), one per process, run with
 * `--expose-gc`: it holds every `/slow` request until 200 ms after the stop,
 * answers the rest at once, and answers the parent's messages:
 *
 * - `heap`: the heap in use after a full GC, in bytes;
 * - `stop`: stops the way its strategy does (the listener closes at once),
 *   and once every connection is gone says how long that took from the stop
 *   and how much CPU the process used meanwhile.
 *
 *   node --expose-gc bench/http/scaleServer.ts <node | http-terminator | stoppable | graceful-node> <h1 | h2>
 */
import { Effect, Layer } from "effect"
import { createHttpTerminator } from "http-terminator"
import * as NodeHttp from "node:http"
import * as NodeHttp2 from "node:http2"
import type { AddressInfo } from "node:net"
import stoppable from "stoppable"
import * as Http from "../../src/Http.ts"
import { Quit, Shutdown } from "../../src/index.ts"

export const RELEASE_AFTER_MS = 200

const [strategy, kind] = process.argv.slice(2) as [string, "h1" | "h2"]
const held: Array<() => void> = []
let stopped = false
const handler = (req: NodeHttp.IncomingMessage | NodeHttp2.Http2ServerRequest, res: NodeHttp.ServerResponse | NodeHttp2.Http2ServerResponse) => {
  if (req.url !== "/slow") return void res.end("idle")
  const release = () => void res.end("slow")
  if (stopped) setTimeout(release, RELEASE_AFTER_MS)
  else held.push(release)
}
const server = kind === "h2" ? NodeHttp2.createServer(handler) : NodeHttp.createServer(handler)
const listen = { port: 0, host: "127.0.0.1", backlog: 4096 } as const

let stop: () => void
if (strategy === "graceful-node") {
  const quit = Effect.runSync(Quit.make({ drainTimeout: "20 seconds" }, { phase: "starting" }))
  Effect.runFork(Shutdown.run(Shutdown.launch(Http.layerNode(() => server, listen))).pipe(
    Effect.provideService(Quit.Quit, quit),
    Effect.provide(Layer.empty)
  ))
  const trigger = Effect.runSync(Effect.provideService(Quit.trigger, Quit.Quit, quit))
  stop = () => void trigger("bench")
} else {
  if (strategy === "node") stop = () => server.close()
  else if (strategy === "stoppable") {
    const s = stoppable(server as NodeHttp.Server, 20_000)
    stop = () => s.stop()
  } else if (strategy === "http-terminator") {
    const terminator = createHttpTerminator({ server: server as NodeHttp.Server, gracefulTerminationTimeout: 20_000 })
    stop = () => void terminator.terminate()
  } else throw new Error(`unknown strategy ${strategy}`)
  server.listen(listen)
}

const gc = (globalThis as { gc?: () => void }).gc
process.on("message", (message) => {
  if (message === "heap") {
    gc?.()
    process.send?.(process.memoryUsage().heapUsed)
  } else if (message === "stop") {
    const cpu = process.cpuUsage()
    const at = performance.now()
    server.once("close", () => {
      const used = process.cpuUsage(cpu)
      process.send?.({ closedAfterMs: performance.now() - at, cpuMicros: used.user + used.system })
    })
    stopped = true
    stop()
    setTimeout(() => held.splice(0).forEach((release) => release()), RELEASE_AFTER_MS)
  }
})
const ready = () => console.log(`READY ${(server.address() as AddressInfo).port}`)
if (server.listening) ready()
else server.once("listening", ready)
