/**
 * The exit as a client sees it, from outside the process: each contender in a
 * child process (exitServer.ts) with 1,000 idle keep-alive sockets and one
 * 600 ms request in flight gets SIGTERM 100 ms into the request; we time the
 * child's exit against the end of that response. Contenders take turns, round
 * after round, so that the machine's noise falls on all alike.
 *
 * Every contender's process loads the same modules (exitServer.ts imports all
 * of them), so that what its teardown costs after the exit has begun is alike,
 * and a preload (exitClock.ts) says when that was: the figure splits into the
 * library's own way to the exit and the process's teardown.
 */
import { once as onceEvent } from "node:events"
import * as NodeHttp from "node:http"
import { fileURLToPath } from "node:url"
import { get, openIdle } from "../../test/support/http.ts"
import { median, startServer } from "../support/child.ts"

const IDLE = 1000
/**
 * How long the idle sockets are idle before the request: longer than the
 * grace (1 s) a keep-alive connection keeps after its last response for a
 * request already on the wire — as idle connections are, in a service that
 * was not just started. (Idle for less, they keep the rest of their grace and
 * the exit comes up to 1 s later: the grace's cost, stated in docs/http.md.)
 */
const IDLE_FOR_MS = 1100
const SIGNAL_AFTER_MS = 100
const ROUNDS = 11
const file = fileURLToPath(new URL("./exitServer.ts", import.meta.url))
const clock = fileURLToPath(new URL("./exitClock.ts", import.meta.url))

export const contenders = ["stoppable", "terminus", "http-terminator", "close-with-grace", "graceful-node", "graceful-effect"] as const
export type Contender = typeof contenders[number]

export interface ExitFigures {
  readonly contender: Contender
  /** Median, and every round, of the child's exit after the last response ended (ms). */
  readonly exitAfterLastResponseMs: number
  readonly rounds: ReadonlyArray<number>
  /** Medians: from the last response to the `exit` event (the library's part), and from there to the exit. */
  readonly exitBeginsMs: number
  readonly teardownMs: number
  readonly exitCode: number | null
}

interface Run {
  readonly ms: number
  readonly exitBeginsMs: number
  readonly code: number | null
}

// The child's monotonic clock reading (ns), on this process's performance.now() scale.
const toPerformance = (ns: bigint): number => performance.now() - Number(process.hrtime.bigint() - ns) / 1e6

const once = async (contender: Contender): Promise<Run> => {
  const server = await startServer(file, [contender], ["--import", clock])
  // 'close' comes after the child's output has all been read, with its exit code.
  const closed = onceEvent(server.child, "close") as Promise<[number | null]>
  const idle = await openIdle(server.port, IDLE)
  await new Promise((resolve) => setTimeout(resolve, IDLE_FOR_MS))
  const agent = new NodeHttp.Agent({ keepAlive: true })
  const slow = get(server.port, "/slow", agent)
  await new Promise((resolve) => setTimeout(resolve, SIGNAL_AFTER_MS))
  server.child.kill("SIGTERM")
  const reply = await slow
  const exitedAt = await server.exited
  idle.destroy()
  agent.destroy()
  if (reply.status !== 200) throw new Error(`${contender}: the request in flight got ${reply.status ?? reply.error}`)
  const [code] = await closed
  const exiting = /EXITING (\d+)/.exec(server.output())
  if (exiting === null) throw new Error(`${contender}: no EXITING line:\n${server.output()}`)
  return { ms: exitedAt - reply.at, exitBeginsMs: toPerformance(BigInt(exiting[1]!)) - reply.at, code }
}

const tenth = (ms: number) => Math.round(ms * 10) / 10

export const exitLatency = async (log: (line: string) => void): Promise<ReadonlyArray<ExitFigures>> => {
  const runs = new Map<Contender, Array<Run>>(contenders.map((c) => [c, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const contender of contenders) runs.get(contender)!.push(await once(contender))
  }
  return contenders.map((contender) => {
    const all = runs.get(contender)!
    const rounds = all.map((run) => tenth(run.ms))
    const figures = {
      contender,
      exitAfterLastResponseMs: median(rounds),
      rounds,
      exitBeginsMs: tenth(median(all.map((run) => run.exitBeginsMs))),
      teardownMs: tenth(median(all.map((run) => run.ms - run.exitBeginsMs))),
      exitCode: all.at(-1)!.code
    }
    log(
      `  ${contender}: exit ${figures.exitAfterLastResponseMs} ms after the last response (${rounds.join(", ")}); ` +
        `exit begins ${figures.exitBeginsMs} ms, teardown ${figures.teardownMs} ms`
    )
    return figures
  })
}

export const exitSettings = { IDLE, IDLE_FOR_MS, SIGNAL_AFTER_MS, ROUNDS }
