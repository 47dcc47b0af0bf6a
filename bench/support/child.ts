/**
 * Benchmark servers in child processes, apart from the load generator: each prints
 * `READY <port>` when it listens, and answers a `cpu` message with its CPU
 * time so far, so that a benchmark can tell server cost from client cost.
 */
import { type ChildProcess, fork } from "node:child_process"
import { once } from "node:events"

export interface Server {
  readonly child: ChildProcess
  readonly port: number
  /** performance.now() when the child exited. */
  readonly exited: Promise<number>
  /** Its stdout and stderr so far, interleaved. */
  output(): string
}

/** Forks `file` with `args` (and Node's own flags `execArgv`) on this Node and waits for its `READY <port>` line. */
export const startServer = async (
  file: string,
  args: ReadonlyArray<string>,
  execArgv: ReadonlyArray<string> = []
): Promise<Server> => {
  const child = fork(file, [...args], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    execPath: process.execPath,
    execArgv: [...process.execArgv, ...execArgv]
  })
  const exited = new Promise<number>((resolve) => child.once("exit", () => resolve(performance.now())))
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => output += chunk.toString())
  child.stderr!.on("data", (chunk: Buffer) => output += chunk.toString())
  const port = await new Promise<number>((resolve, reject) => {
    const onData = () => {
      const match = /READY (\d+)/.exec(output)
      if (match !== null) resolve(Number(match[1]))
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    void exited.then(() => reject(new Error(`${file} ${args.join(" ")} exited before READY:\n${output}`)))
  })
  return { child, port, exited, output: () => output }
}

/** In the child: answers `cpu` messages with `process.cpuUsage()`. */
export const answerCpu = () =>
  process.on("message", (message) => {
    if (message === "cpu") process.send?.(process.cpuUsage())
  })

/** The child's user + system CPU time so far, in microseconds. */
export const cpuMicros = async (child: ChildProcess): Promise<number> => {
  child.send("cpu")
  // Skips other messages: a server under Main.runMain sends 'ready' to its parent.
  for (;;) {
    const [message] = await once(child, "message") as [unknown]
    if (isUsage(message)) return message.user + message.system
  }
}

const isUsage = (message: unknown): message is NodeJS.CpuUsage =>
  typeof message === "object" && message !== null && "user" in message && "system" in message

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
