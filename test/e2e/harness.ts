/**
 * Runs a fixture as a child process on this Node, waits for a line, sends real
 * signals, and reports how and when it exited.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

export interface Child {
  readonly process: ChildProcess
  /** stdout and stderr as they arrive, interleaved. */
  output(): string
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>
  signal(signal: NodeJS.Signals): number
  exited(timeoutMs?: number): Promise<{ readonly code: number | null; readonly at: number }>
  /** With `ipc`: the messages the child sent, in order, and a way to send it one. */
  messages(): ReadonlyArray<unknown>
  send(message: unknown): void
}

export const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

export interface StartOptions {
  /** The child gets `process.send`, as under PM2 or Node's cluster. */
  readonly ipc?: boolean
  /** Node's own flags, before the file (`--import`). */
  readonly execArgv?: ReadonlyArray<string>
  /** Arguments after the file. */
  readonly args?: ReadonlyArray<string>
  readonly cwd?: string
  /** Run this program instead of this Node, `file` its first argument (`systemd-socket-activate`). */
  readonly executable?: string
}

export const start = (file: string, env: Record<string, string> = {}, options: StartOptions = {}): Child => {
  const child = spawn(options.executable ?? process.execPath, [...(options.execArgv ?? []), file, ...(options.args ?? [])], {
    env: { ...process.env, ...env },
    cwd: options.cwd,
    // With `ipc`, the child has `process.send`, as under PM2 or Node's cluster.
    stdio: options.ipc === true ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"]
  })
  const messages: Array<unknown> = []
  child.on("message", (message) => messages.push(message))
  let output = ""
  const listeners = new Set<() => void>()
  const onData = (chunk: Buffer) => {
    output += chunk.toString()
    for (const listener of listeners) listener()
  }
  child.stdout!.on("data", onData)
  child.stderr!.on("data", onData)
  // "exit" may come before the last output is read; "close" comes after the
  // stdio streams have ended, so output() is complete when exited() resolves.
  // The time is taken at "exit", when the process ended.
  let exitedAt = 0
  child.on("exit", () => exitedAt = performance.now())
  const exit = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.on("close", (code) => resolve({ code, at: exitedAt }))
  )
  return {
    process: child,
    output: () => output,
    waitFor: (pattern, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(output)) {
            listeners.delete(check)
            clearTimeout(timer)
            resolve()
          }
        }
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(new Error(`timed out waiting for ${pattern}; output so far:\n${output}`))
        }, timeoutMs)
        listeners.add(check)
        check()
      }),
    // The time before the kill: the child may act on the signal before this
    // process, descheduled after the kill, reads the clock again.
    signal: (signal) => {
      const at = performance.now()
      child.kill(signal)
      return at
    },
    messages: () => messages,
    send: (message) => child.send(message as string),
    exited: (timeoutMs = 15_000) =>
      Promise.race([
        exit,
        new Promise<never>((_, reject) =>
          setTimeout(() => {
            child.kill("SIGKILL")
            reject(new Error(`did not exit within ${timeoutMs} ms; output:\n${output}`))
          }, timeoutMs).unref()
        )
      ])
  }
}
