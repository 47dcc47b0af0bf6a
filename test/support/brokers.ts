/**
 * Real brokers for the tests, from Debian's packages: redis-server, RabbitMQ
 * and nats-server (JetStream), each started on free ports in a temporary
 * folder of its own and stopped by `stop()`. Missing packages are installed
 * by test/support/install-brokers.sh (the tests call it: a fresh CI machine
 * has none of them).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { createServer } from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export interface Broker {
  readonly url: string
  readonly port: number
  readonly process: ChildProcess
  stop(): Promise<void>
}

const install = fileURLToPath(new URL("./install-brokers.sh", import.meta.url))
let installed = false

/** Installs the broker packages that are missing (apt-get, non-interactive); once per test file. */
export const ensureInstalled = (): void => {
  if (installed) return
  execFileSync("bash", [install], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })
  installed = true
}

/** A port nothing listens on now. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port")))
    })
  })

// Not test/support/temp.ts: the benchmarks start these servers too, outside vitest. stop() removes it.
const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), `effect-graceful-${prefix}-`))

const started = (child: ChildProcess, ready: RegExp, name: string, timeoutMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    let output = ""
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      if (ready.test(output)) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", onData)
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${output}`)))
    const timer = setTimeout(() => reject(new Error(`${name} not ready within ${timeoutMs} ms:\n${output}`)), timeoutMs)
  })

/** SIGTERM, SIGKILL after 15 s (and `pidFile`'s process: RabbitMQ's script does not pass it on), then the folder goes. */
const stopper = (child: ChildProcess, dir: string, pidFile?: string) => (): Promise<void> =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const kill = setTimeout(() => {
      child.kill("SIGKILL")
      if (pidFile !== undefined) {
        try {
          process.kill(Number(readFileSync(pidFile, "utf8").trim()), "SIGKILL")
        } catch {
          // gone already
        }
      }
    }, 15_000)
    child.once("exit", () => {
      clearTimeout(kill)
      resolve()
    })
    child.kill("SIGTERM")
  }).then(() => rmSync(dir, { recursive: true, force: true }))

const launch = async (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly cwd: string; readonly ready: RegExp; readonly timeoutMs: number }
) => {
  const child = spawn(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] })
  try {
    await started(child, options.ready, name, options.timeoutMs)
  } catch (error) {
    child.kill("SIGKILL")
    throw error
  }
  return child
}

/** redis-server on a free port, no persistence. */
export const redis = async (): Promise<Broker> => {
  ensureInstalled()
  const dir = tempDir("redis")
  const port = await freePort()
  const child = await launch(
    "redis-server",
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no"],
    { cwd: dir, ready: /Ready to accept connections/, timeoutMs: 20_000 }
  )
  return { url: `redis://127.0.0.1:${port}`, port, process: child, stop: stopper(child, dir) }
}

/**
 * RabbitMQ as a node of its own (its own name, Mnesia folder, AMQP and
 * distribution ports, Erlang cookie in its folder), no plugins. Booting takes
 * 5–20 s on a loaded machine: the wait is for the log line that says so.
 */
export const rabbitmq = async (): Promise<Broker> => {
  ensureInstalled()
  const dir = tempDir("rabbitmq")
  const port = await freePort()
  const dist = await freePort()
  mkdirSync(join(dir, "log"))
  writeFileSync(join(dir, "enabled_plugins"), "[].\n")
  writeFileSync(join(dir, "rabbitmq.conf"), `listeners.tcp.default = ${port}\nloopback_users = none\n`)
  const node = `eg${process.pid}x${port}@localhost`
  const child = await launch("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server", [], {
    cwd: dir,
    env: {
      HOME: dir,
      RABBITMQ_NODENAME: node,
      RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
      RABBITMQ_LOG_BASE: join(dir, "log"),
      RABBITMQ_LOGS: "-",
      RABBITMQ_NODE_PORT: String(port),
      RABBITMQ_DIST_PORT: String(dist),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
      RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
      RABBITMQ_PID_FILE: join(dir, "pid")
    },
    ready: /Server startup complete/,
    timeoutMs: 120_000
  })
  return { url: `amqp://guest:guest@127.0.0.1:${port}`, port, process: child, stop: stopper(child, dir, join(dir, "pid")) }
}

/** nats-server with JetStream (-js), its store in a temporary folder. */
export const nats = async (): Promise<Broker> => {
  ensureInstalled()
  const dir = tempDir("nats")
  const port = await freePort()
  const child = await launch(
    "nats-server",
    "nats-server",
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir, "-m", "0"],
    { cwd: dir, ready: /Server is ready/, timeoutMs: 20_000 }
  )
  return { url: `nats://127.0.0.1:${port}`, port, process: child, stop: stopper(child, dir) }
}
