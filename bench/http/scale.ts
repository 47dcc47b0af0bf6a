/**
 * Scale: many connections at once, each strategy in a child process of its
 * own (scaleServer.ts). HTTP/1.1: 10,000 idle keep-alive connections (each
 * served one request) plus 100 requests in flight; HTTP/2 (h2c): 1,000 idle
 * sessions plus 10 with a stream in flight. The requests in flight end
 * 200 ms after the stop; we read, from the server itself, the heap per
 * connection, the time from the stop (the listener closing) to the last
 * connection gone, and the CPU the server used in between.
 */
import { fork } from "node:child_process"
import { once } from "node:events"
import * as NodeHttp2 from "node:http2"
import { fileURLToPath } from "node:url"
import { get, openIdle, request2 } from "../../test/support/http.ts"
import { median } from "../support/child.ts"

const ROUNDS = 3
const file = fileURLToPath(new URL("./scaleServer.ts", import.meta.url))
export const kinds = {
  h1: { idle: 10_000, inFlight: 100, strategies: ["node", "http-terminator", "stoppable", "graceful-node"] },
  h2: { idle: 1_000, inFlight: 10, strategies: ["node", "stoppable", "graceful-node"] }
} as const

export interface ScaleFigures {
  readonly kind: keyof typeof kinds
  readonly strategy: string
  readonly bytesPerConnection: number
  readonly closedAfterStopMs: number
  readonly drainCpuMs: number
}

const ask = async <A>(child: ReturnType<typeof fork>, message: string): Promise<A> => {
  child.send(message)
  const [answer] = await once(child, "message") as [A]
  return answer
}

const round = async (kind: keyof typeof kinds, strategy: string) => {
  const child = fork(file, [strategy, kind], { execArgv: ["--expose-gc"], stdio: ["ignore", "pipe", "pipe", "ipc"] })
  let output = ""
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      const match = /READY (\d+)/.exec(output)
      if (match !== null) resolve(Number(match[1]))
    })
    child.once("exit", () => reject(new Error(`${strategy} ${kind} exited:\n${output}`)))
  })
  const before = await ask<number>(child, "heap")
  const { idle, inFlight } = kinds[kind]
  const cleanups: Array<() => void> = []
  let pending: Array<Promise<unknown>>
  if (kind === "h1") {
    const sockets = await openIdle(port, idle, 200)
    cleanups.push(() => sockets.destroy())
    pending = Array.from({ length: inFlight }, () => get(port, "/slow"))
  } else {
    const sessions = Array.from({ length: idle + inFlight }, () => NodeHttp2.connect(`http://127.0.0.1:${port}`))
    for (const session of sessions) session.on("error", () => {})
    cleanups.push(() => sessions.forEach((session) => session.destroy()))
    for (let i = 0; i < idle; i += 100) await Promise.all(sessions.slice(i, i + 100).map((session) => request2(session, "/idle")))
    pending = sessions.slice(idle).map((session) => request2(session, "/slow"))
  }
  await new Promise((resolve) => setTimeout(resolve, 200))
  const after = await ask<number>(child, "heap")
  const { closedAfterMs, cpuMicros } = await ask<{ closedAfterMs: number; cpuMicros: number }>(child, "stop")
  await Promise.all(pending)
  cleanups.forEach((cleanup) => cleanup())
  child.kill("SIGKILL")
  return { bytesPerConnection: (after - before) / (idle + inFlight), closedAfterMs, cpuMs: cpuMicros / 1000 }
}

export const scale = async (log: (line: string) => void): Promise<ReadonlyArray<ScaleFigures>> => {
  const figures: Array<ScaleFigures> = []
  for (const kind of ["h1", "h2"] as const) {
    for (const strategy of kinds[kind].strategies) {
      const runs = []
      for (let r = 0; r < ROUNDS; r++) runs.push(await round(kind, strategy))
      const f = {
        kind,
        strategy,
        bytesPerConnection: Math.round(median(runs.map((r) => r.bytesPerConnection))),
        closedAfterStopMs: Math.round(median(runs.map((r) => r.closedAfterMs))),
        drainCpuMs: Math.round(median(runs.map((r) => r.cpuMs)) * 10) / 10
      }
      log(`  ${kind} ${strategy}: ${f.bytesPerConnection} B / connection, closed ${f.closedAfterStopMs} ms after the stop, ${f.drainCpuMs} ms CPU`)
      figures.push(f)
    }
  }
  return figures
}
