/**
 * A port handoff on one machine, with no balancer in front (Linux): the next
 * instance of the example service listens on the same ports (SO_REUSEPORT)
 * before the old one leaves, so that no connection is refused or reset.
 *
 *   node examples/handoff.ts     # the example service; each SIGHUP hands it over to a new instance
 *
 * The procedure, for a supervisor or a deploy script:
 *
 * 1. start the new instance on the same ports with REUSE_PORT=1, and a health
 *    port of its own (HEALTH_PORT=0: the system picks one; the service logs it);
 * 2. wait until the new instance's readiness answers 200 on that port;
 * 3. SIGTERM the old one: its readiness fails, it serves through DRAIN_DELAY
 *    while both listen (the kernel spreads new connections between them),
 *    then closes its listeners and drains what it has.
 *
 * With `net.ipv4.tcp_migrate_req=1` (Linux ≥ 5.14) the connections still
 * waiting in the old listener's accept queue when it closes move to the new
 * one; with 0 (the default) the kernel resets them.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Http from "node:http"
import { fileURLToPath } from "node:url"

const service = fileURLToPath(new URL("./main.ts", import.meta.url))

/** A running instance of the example service. */
export interface Instance {
  readonly child: ChildProcess
  /** Its own readiness and liveness port. */
  readonly healthPort: number
  /** Everything it wrote so far. */
  readonly output: () => string
  /** Resolves with its exit code. */
  readonly exited: Promise<number | null>
}

/** How to start a process: the command and the arguments before the script (e.g. `ip netns exec <ns> node`). */
export type Launcher = readonly [command: string, ...args: Array<string>]

const readiness = (port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const request = Http.get({ host: "127.0.0.1", port, path: "/readyz", agent: false }, (response) => {
      response.resume()
      resolve(response.statusCode)
    })
    request.on("error", () => resolve(undefined))
  })

/**
 * Starts an instance with `env` (over this process's environment), REUSE_PORT=1
 * and HEALTH_PORT=0, and resolves once its readiness answers 200.
 */
export const startInstance = async (env: Record<string, string>, launcher: Launcher = [process.execPath]): Promise<Instance> => {
  const [command, ...args] = launcher
  const child = spawn(command, [...args, service], {
    env: { ...process.env, ...env, REUSE_PORT: "1", HEALTH_PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const healthPort = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const found = /example service listening: .*health=(\d+)/.exec(output)
      if (found !== null) resolve(Number(found[1]))
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    void exited.then((code) => reject(new Error(`the instance exited with ${code} before it listened:\n${output}`)))
  })
  // The ports are bound once the line is out; readiness says when every layer
  // is up. Asked on this process's own loopback: start the instance where its
  // supervisor runs (the same network namespace).
  const giveUp = performance.now() + 30_000
  while (await readiness(healthPort) !== 200) {
    if (child.exitCode !== null || performance.now() > giveUp) {
      child.kill("SIGKILL")
      throw new Error(`the instance never became ready on 127.0.0.1:${healthPort}:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return { child, healthPort, output: () => output, exited }
}

/**
 * Hands `old`'s ports to a new instance: starts it (`start`), waits until it
 * is ready, then sends `old` SIGTERM. Resolves with the new instance once it
 * is ready, and with the old one's exit.
 */
export const handoff = async (
  old: Instance,
  start: () => Promise<Instance>
): Promise<{ readonly next: Instance; readonly signalledAt: number; readonly oldExit: Promise<number | null> }> => {
  const next = await start()
  const signalledAt = performance.timeOrigin + performance.now()
  old.child.kill("SIGTERM")
  return { next, signalledAt, oldExit: old.exited }
}

if (import.meta.main) {
  const env = { PORT: process.env["PORT"] ?? "8080", WEB_PORT: process.env["WEB_PORT"] ?? "8081", GRPC_PORT: process.env["GRPC_PORT"] ?? "50051" }
  let current = await startInstance(env)
  process.stdout.write(`handoff: instance ${current.child.pid} ready; SIGHUP hands over, SIGTERM stops\n`)
  let busy = false
  process.on("SIGHUP", () => {
    if (busy) return
    busy = true
    void handoff(current, () => startInstance(env)).then(async ({ next, oldExit }) => {
      process.stdout.write(`handoff: instance ${next.child.pid} ready; ${current.child.pid} draining\n`)
      const code = await oldExit
      process.stdout.write(`handoff: instance ${current.child.pid} exited with ${code}\n`)
      current = next
      busy = false
    })
  })
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      current.child.kill("SIGTERM")
      void current.exited.then((code) => process.exit(code ?? 1))
    })
  }
}
