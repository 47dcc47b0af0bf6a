/**
 * HAProxy in front of instances of the example service, as a Kubernetes
 * Service (and its proxies) is in front of pods: four backends — the Effect
 * API, the Express app, gRPC balanced per call (HTTP/2 end to end, as an
 * ingress or a service mesh does) and gRPC balanced per connection (TCP, as
 * kube-proxy does) — each health-checked on the instance's readiness endpoint
 * (`GET /readyz` on its API port), which answers 503 from the quit event on. Instances live in slots of fixed
 * loopback ports, so that a replacement can take the place its predecessor
 * left, as a new pod takes a new address.
 *
 * The test talks to HAProxy's admin socket (`show stat`) to know when a server
 * is UP or DOWN, and how many sessions each one served.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import type { Ports } from "../../../examples/service/ports.ts"

/** Where one instance listens; a replacement reuses the slot of the instance it replaced. */
export interface Slot extends Ports {
  readonly name: string
}

/** The health check, in HAProxy's terms; see the README section on Kubernetes for the mapping. */
export interface Check {
  /** Milliseconds between checks (readinessProbe.periodSeconds). */
  readonly interMs: number
  /** Failed checks before DOWN (readinessProbe.failureThreshold). */
  readonly fall: number
  /** Passed checks before UP (readinessProbe.successThreshold). */
  readonly rise: number
}

export interface ServerStat {
  readonly backend: string
  readonly server: string
  /** UP, DOWN, or a transition such as "UP 1/2". */
  readonly status: string
  /** Sessions it has served. */
  readonly sessions: number
  /** Times HAProxy retried a connection to it (`wretr`). */
  readonly retries: number
  /** Times a request meant for it went to another server (`wredis`, with `option redispatch`). */
  readonly redispatches: number
}

/** Where clients connect: one frontend per backend. */
export interface Frontends extends Ports {
  /** gRPC over plain TCP: a connection stays on one instance until that instance closes it. */
  readonly grpcTcp: number
}

export type Backend = "api" | "web" | "grpc" | "grpc-tcp"
export const backends: ReadonlyArray<Backend> = ["api", "web", "grpc", "grpc-tcp"]

export interface Haproxy {
  readonly frontends: Frontends
  readonly stats: () => Promise<ReadonlyArray<ServerStat>>
  /** Resolves when `server` is `status` (UP or DOWN) in every backend; performance.now() at that moment. */
  readonly waitFor: (server: string, status: "UP" | "DOWN", timeoutMs?: number) => Promise<number>
  readonly output: () => string
}

/** The haproxy binary; throws — the scenario fails, it is not skipped — if it is not installed. */
export const haproxyBinary = (): string => {
  for (const candidate of ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"]) {
    if (existsSync(candidate)) return candidate
  }
  try {
    return execFileSync("sh", ["-c", "command -v haproxy"], { encoding: "utf8" }).trim()
  } catch {
    throw new Error("haproxy is not installed: run test/reliability/setup.sh (npm run test:reliability does)")
  }
}

/** A loopback port free right now. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const ports = async (): Promise<Ports> => ({ api: await freePort(), web: await freePort(), grpc: await freePort() })

export const makeSlots = async (names: ReadonlyArray<string>): Promise<ReadonlyArray<Slot>> => {
  const slots: Array<Slot> = []
  for (const name of names) slots.push({ name, ...(await ports()) })
  return slots
}

const backend = (name: Backend, slots: ReadonlyArray<Slot>, check: Check) => [
  `backend ${name}`,
  ...(name === "grpc-tcp" ? ["  mode tcp"] : []),
  "  option httpchk GET /readyz",
  "  http-check expect status 200",
  `  default-server check inter ${check.interMs} fall ${check.fall} rise ${check.rise}`,
  // The check goes to the instance's API port (`port`) over HTTP/1 (`check-proto`, after `proto`), whatever the backend speaks.
  ...slots.map((slot) =>
    name === "grpc-tcp"
      ? `  server ${slot.name} 127.0.0.1:${slot.grpc} port ${slot.api}`
      : `  server ${slot.name} 127.0.0.1:${slot[name]} port ${slot.api}${name === "grpc" ? " proto h2 check-proto h1" : ""}`
  )
]

const configuration = (socket: string, frontends: Frontends, slots: ReadonlyArray<Slot>, check: Check) =>
  [
    "global",
    `  stats socket ${socket} mode 600 level admin`,
    "defaults",
    "  mode http",
    "  timeout connect 1s",
    // Longer than any request of the scenario, and than the instances' drain.
    "  timeout client 30s",
    "  timeout server 30s",
    `frontend api`,
    `  bind 127.0.0.1:${frontends.api}`,
    "  default_backend api",
    `frontend web`,
    `  bind 127.0.0.1:${frontends.web}`,
    "  default_backend web",
    `frontend grpc`,
    `  bind 127.0.0.1:${frontends.grpc} proto h2`,
    "  default_backend grpc",
    `frontend grpc-tcp`,
    "  mode tcp",
    `  bind 127.0.0.1:${frontends.grpcTcp}`,
    "  default_backend grpc-tcp",
    ...backends.flatMap((name) => backend(name, slots, check)),
    ""
  ].join("\n")

const adminCommand = (socket: string, command: string): Promise<string> =>
  new Promise((resolve, reject) => {
    let answer = ""
    const connection = Net.connect(socket, () => connection.end(`${command}\n`))
    connection.on("data", (chunk: Buffer) => answer += chunk.toString())
    connection.on("error", reject)
    connection.on("close", () => resolve(answer))
  })

const parseStats = (csv: string): ReadonlyArray<ServerStat> => {
  const [header, ...rows] = csv.trim().split("\n")
  const columns = (header ?? "").replace(/^# /, "").split(",")
  const at = (name: string) => columns.indexOf(name)
  return rows.map((row) => row.split(",")).filter((cells) => !["FRONTEND", "BACKEND"].includes(cells[at("svname")] ?? ""))
    .map((cells) => ({
      backend: cells[at("pxname")] ?? "",
      server: cells[at("svname")] ?? "",
      status: cells[at("status")] ?? "",
      sessions: Number(cells[at("stot")] ?? 0),
      retries: Number(cells[at("wretr")] || 0),
      redispatches: Number(cells[at("wredis")] || 0)
    }))
}

/**
 * Starts HAProxy in the foreground with the configuration above, in `dir`;
 * `onExit` registers its stop. Resolves once it answers on its admin socket.
 */
export const startHaproxy = async (
  dir: string,
  slots: ReadonlyArray<Slot>,
  check: Check,
  onExit: (stop: () => void) => void
): Promise<Haproxy> => {
  const frontends = { ...(await ports()), grpcTcp: await freePort() }
  const proxy = await launchHaproxy(dir, (socket) => configuration(socket, frontends, slots, check), onExit)
  return { ...proxy, frontends }
}

/**
 * Starts HAProxy in the foreground, in `dir`, with the configuration that
 * `render` writes for an admin socket at the path it is given (it must
 * declare it: `stats socket <path> level admin`); `onExit` registers its stop.
 * Resolves once it answers on its admin socket.
 */
export const launchHaproxy = async (
  dir: string,
  render: (socket: string) => string,
  onExit: (stop: () => void) => void
): Promise<Omit<Haproxy, "frontends">> => {
  const socket = join(dir, "admin.sock")
  const file = join(dir, "haproxy.cfg")
  writeFileSync(file, render(socket))
  const child: ChildProcess = spawn(haproxyBinary(), ["-db", "-f", file], { stdio: ["ignore", "pipe", "pipe"] })
  onExit(() => child.kill("SIGKILL"))
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => output += chunk)
  child.stderr?.on("data", (chunk: Buffer) => output += chunk)
  const stats = async () => parseStats(await adminCommand(socket, "show stat"))
  const deadline = performance.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${output}`)
    if (existsSync(socket) && (await stats().catch(() => [])).length > 0) break
    if (performance.now() > deadline) throw new Error(`haproxy did not start:\n${output}`)
    await sleep(20)
  }
  return {
    stats,
    output: () => output,
    waitFor: async (server, status, timeoutMs = 10_000) => {
      const until = performance.now() + timeoutMs
      for (;;) {
        const rows = (await stats()).filter((row) => row.server === server)
        if (rows.length > 0 && rows.every((row) => row.status === status)) return performance.now()
        if (performance.now() > until) {
          throw new Error(`${server} not ${status} within ${timeoutMs} ms: ${JSON.stringify(rows)}\n${output}`)
        }
        await sleep(10)
      }
    }
  }
}
