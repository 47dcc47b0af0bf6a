/**
 * The exit as a client sees it, from outside the process: each contender in a
 * child process (exitServer.ts) with 1,000 idle keep-alive sockets and one
 * 600 ms request in flight gets SIGTERM 100 ms into the request; we time the
 * child's exit against the end of that response. Contenders take turns, round
 * after round, so that the machine's noise falls on all alike.
 */
import * as NodeHttp from "node:http"
import { fileURLToPath } from "node:url"
import { get, openIdle } from "../../test/support/http.ts"
import { median, startServer } from "../support/child.ts"

const IDLE = 1000
const SIGNAL_AFTER_MS = 100
const ROUNDS = 7
const file = fileURLToPath(new URL("./exitServer.ts", import.meta.url))

export const contenders = ["stoppable", "terminus", "http-terminator", "close-with-grace", "graceful-node", "graceful-effect"] as const
export type Contender = typeof contenders[number]

export interface ExitFigures {
  readonly contender: Contender
  /** Median, and every round, of the child's exit after the last response ended (ms). */
  readonly exitAfterLastResponseMs: number
  readonly rounds: ReadonlyArray<number>
  readonly exitCode: number | null
}

const once = async (contender: Contender): Promise<{ readonly ms: number; readonly code: number | null }> => {
  const server = await startServer(file, [contender])
  const code = new Promise<number | null>((resolve) => server.child.once("exit", (c) => resolve(c)))
  const idle = await openIdle(server.port, IDLE)
  const agent = new NodeHttp.Agent({ keepAlive: true })
  const slow = get(server.port, "/slow", agent)
  await new Promise((resolve) => setTimeout(resolve, SIGNAL_AFTER_MS))
  server.child.kill("SIGTERM")
  const reply = await slow
  const exitedAt = await server.exited
  idle.destroy()
  agent.destroy()
  if (reply.status !== 200) throw new Error(`${contender}: the request in flight got ${reply.status ?? reply.error}`)
  return { ms: exitedAt - reply.at, code: await code }
}

export const exitLatency = async (log: (line: string) => void): Promise<ReadonlyArray<ExitFigures>> => {
  const runs = new Map<Contender, Array<{ readonly ms: number; readonly code: number | null }>>(contenders.map((c) => [c, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const contender of contenders) runs.get(contender)!.push(await once(contender))
  }
  return contenders.map((contender) => {
    const rounds = runs.get(contender)!.map((run) => Math.round(run.ms * 10) / 10)
    const figures = { contender, exitAfterLastResponseMs: median(rounds), rounds, exitCode: runs.get(contender)!.at(-1)!.code }
    log(`  ${contender}: exit ${figures.exitAfterLastResponseMs} ms after the last response (${rounds.join(", ")})`)
    return figures
  })
}

export const exitSettings = { IDLE, SIGNAL_AFTER_MS, ROUNDS }
