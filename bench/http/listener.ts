/**
 * From the quit event to the listener's close, beside `server.close()` called
 * directly: the time a connection arriving then can still be accepted (and
 * then reset) rather than refused. Each server has 100 idle keep-alive
 * connections; drain delay 0. Measured in one process, the strategies taking
 * turns round after round: the time of the call that closes the listener, and
 * the event-loop turns after it before the listener is closed (0: within the
 * call, before the loop can accept another connection).
 */
import { Effect, Exit, Fiber, Layer, Scope, Stream } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as NodeHttp from "node:http"
import * as Net from "node:net"
import { openIdle } from "../../test/support/http.ts"
import { Http, Quit, Shutdown } from "../../src/index.ts"
import { median } from "../support/child.ts"

const ROUNDS = 31
const IDLE = 100

export const strategies = ["server.close()", "Http.layerNode", "Http.layer"] as const
export type Strategy = typeof strategies[number]

export interface ListenerFigures {
  readonly strategy: Strategy
  /** Median µs from the call to the listener closed. */
  readonly micros: number
  /** Median event-loop turns after the call before it is closed. */
  readonly turns: number
  readonly rounds: ReadonlyArray<number>
}

const portOf = (server: Net.Server) => (server.address() as Net.AddressInfo).port

/** Calls `close` and measures until `server` stops listening: µs and turns. */
const timed = (server: Net.Server, close: () => void) =>
  new Promise<{ readonly micros: number; readonly turns: number }>((resolve) => {
    const start = performance.now()
    close()
    let turns = 0
    const check = () => {
      if (!server.listening) return resolve({ micros: (performance.now() - start) * 1000, turns })
      turns++
      setImmediate(check)
    }
    check()
  })

const plain = async () => {
  const server = NodeHttp.createServer((_req, res) => res.end("hello"))
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const idle = await openIdle(portOf(server), IDLE)
  const result = await timed(server, () => server.close())
  idle.destroy()
  server.closeAllConnections()
  return result
}

const graceful = async (strategy: Exclude<Strategy, "server.close()">) => {
  const server = NodeHttp.createServer(strategy === "Http.layerNode" ? (_req, res) => res.end("hello") : undefined)
  const layer = strategy === "Http.layerNode"
    ? Http.layerNode(() => server, { port: 0, host: "127.0.0.1" })
    : HttpRouter.serve(HttpRouter.add("GET", "/idle", HttpServerResponse.text("idle")), {
      disableLogger: true,
      disableListenLog: true
    }).pipe(Layer.provide(Http.layer(() => server, { port: 0, host: "127.0.0.1" })))
  const program = Effect.gen(function*() {
    const run = yield* Effect.forkDetach(Shutdown.run(Shutdown.launch(layer)), { startImmediately: true })
    yield* Quit.phases.pipe(Stream.filter((change) => change.phase === "running"), Stream.take(1), Stream.runDrain)
    const trigger = yield* Quit.trigger
    return { run, trigger }
  })
  const scope = Effect.runSync(Scope.make())
  const quit = await Effect.runPromise(
    Layer.buildWithScope(Quit.layer({ drainDelay: 0, progressInterval: 0 }, { phase: "starting" }), scope)
  )
  const { run, trigger } = await Effect.runPromise(Effect.provideContext(program, quit))
  const idle = await openIdle(portOf(server), IDLE)
  const result = await timed(server, () => trigger("bench"))
  await Effect.runPromise(Fiber.join(run))
  idle.destroy()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return result
}

/** Every strategy, `ROUNDS` times, in turns. */
export const listenerClose = async (log: (line: string) => void): Promise<ReadonlyArray<ListenerFigures>> => {
  const samples = new Map<Strategy, Array<{ readonly micros: number; readonly turns: number }>>(strategies.map((s) => [s, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const strategy of strategies) {
      samples.get(strategy)!.push(strategy === "server.close()" ? await plain() : await graceful(strategy))
    }
  }
  return strategies.map((strategy) => {
    const runs = samples.get(strategy)!
    const figures = {
      strategy,
      micros: Math.round(median(runs.map((r) => r.micros))),
      turns: median(runs.map((r) => r.turns)),
      rounds: runs.map((r) => Math.round(r.micros))
    }
    log(`  ${strategy}: ${figures.micros} µs, ${figures.turns} turns`)
    return figures
  })
}
