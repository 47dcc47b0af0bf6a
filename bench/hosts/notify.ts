/**
 * What each sd_notify transport costs, side by side in one run: node-unix-socket
 * in this process, the long-lived python3 helper, and systemd-notify spawned
 * per message. For each: the time until the first message arrives from a
 * cold start (the helper starts python3), the median round trip of one
 * message (sent, then received by a datagram socket of our own), and the CPU
 * time per message, of this process and of its children (the helper, the
 * systemd-notify processes) — read from /proc.
 *
 *   npm run bench:hosts     # writes bench/hosts/results.md and results.json
 */
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as notify from "../../src/internal/hosts/notify.ts"
import { installOptional } from "../../test/support/optional.ts"

// The native transport's optional peer is not a dependency of the project (see
// test/support/optional.ts): installed beside it, and found through NODE_PATH,
// which Node reads at start — so this bench runs again with it set.
if (process.env["NODE_PATH"] === undefined) {
  const range = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    readonly peerDependencies: Record<string, string>
  }).peerDependencies["node-unix-socket"] ?? "*"
  const again = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    stdio: "inherit",
    env: { ...process.env, NODE_PATH: installOptional("node-unix-socket", range) }
  })
  process.exit(again.status ?? 1)
}

const MESSAGES = 200
const TICK = 1000 / 100 // /proc times are in clock ticks of 10 ms on Linux (USER_HZ = 100)

const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
sys.stdout.write("bound\\n"); sys.stdout.flush()
while True:
    data = s.recv(65536)
    for line in data.decode().split("\\n"):
        if line.startswith("SEQ="):
            sys.stdout.write(line + "\\n")
    sys.stdout.flush()
`

const receiver = async (path: string) => {
  const child = spawn("python3", ["-u", "-c", RECEIVER, path], { stdio: ["ignore", "pipe", "inherit"] })
  const seen = new Set<number>()
  const waiters = new Map<number, () => void>()
  let buffered = ""
  let bound: () => void = () => {}
  const ready = new Promise<void>((resolve) => bound = resolve)
  child.stdout.setEncoding("utf8")
  child.stdout.on("data", (chunk: string) => {
    buffered += chunk
    const lines = buffered.split("\n")
    buffered = lines.pop()!
    for (const line of lines) {
      if (line === "bound") bound()
      const n = Number(line.slice(4))
      seen.add(n)
      waiters.get(n)?.()
    }
  })
  await ready
  return {
    child,
    received: (n: number) => seen.has(n) ? Promise.resolve() : new Promise<void>((resolve) => waiters.set(n, resolve))
  }
}

/** CPU milliseconds of this process and of its reaped children so far (/proc/self/stat utime+stime, cutime+cstime). */
const cpu = (pid: number | "self" = "self") => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  // After the command: field 14 utime is index 11, stime 12, cutime 13, cstime 14.
  return { own: (Number(fields[11]) + Number(fields[12])) * TICK, children: (Number(fields[13]) + Number(fields[14])) * TICK }
}

interface Result {
  readonly transport: notify.Kind
  readonly firstMillis: number
  readonly medianRoundTripMillis: number
  readonly cpuPerMessageMillis: number
  readonly sender: string
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const measure = async (kind: notify.Kind): Promise<Result> => {
  const dir = mkdtempSync(join(tmpdir(), "notify-bench-"))
  const path = join(dir, "n.sock")
  const socket = await receiver(path)
  const start = performance.now()
  const transport = notify.open(path, kind, (error) => console.error(kind, error))
  if (transport === undefined) throw new Error(`${kind}: not available here`)
  transport.send("SEQ=0")
  await socket.received(0)
  const firstMillis = performance.now() - start
  // Steady state from here: this process, the children it reaps (systemd-notify), the live helper.
  const before = cpu()
  const helperBefore = helperCpu()
  const trips: Array<number> = []
  for (let i = 1; i <= MESSAGES; i++) {
    const sent = performance.now()
    transport.send(`WATCHDOG=1\nSEQ=${i}`)
    await socket.received(i)
    trips.push(performance.now() - sent)
  }
  // The last systemd-notify has exited (its message arrived after its barrier): wait for its reaping.
  await new Promise((resolve) => setTimeout(resolve, 100))
  const after = cpu()
  const helper = helperCpu() - helperBefore
  transport.close()
  socket.child.kill("SIGKILL")
  rmSync(dir, { recursive: true, force: true })
  const spent = after.own - before.own + (after.children - before.children) + helper
  return {
    transport: kind,
    firstMillis,
    medianRoundTripMillis: median(trips),
    cpuPerMessageMillis: spent / MESSAGES,
    sender: kind === "native" ? "the main process (NotifyAccess=main)" : kind === "helper" ? "python3 (NotifyAccess=all)" : "systemd-notify (NotifyAccess=all; as root, the parent's PID)"
  }
}

// The CPU time of the live python3 helper, if there is one (found by its script).
const helperCpu = (): number => {
  const children = readFileSync(`/proc/self/task/${process.pid}/children`, "utf8").trim().split(/\s+/).filter((p) => p !== "")
  let total = 0
  for (const pid of children) {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8")
    if (cmdline.includes("sd_notify helper")) total += cpu(Number(pid)).own
  }
  return total
}

const results: Array<Result> = []
for (const kind of notify.KINDS) results.push(await measure(kind))

const native = results.find((r) => r.transport === "native")!
const fixed = (n: number) => n.toFixed(2)
const md = [
  "# sd_notify transports",
  "",
  `${MESSAGES} messages each, one at a time (sent, then awaited at a datagram socket of our own), on ${cpus()[0]?.model ?? "?"} ` +
  `(${cpus().length} cores, shared), Node ${process.versions.node}. "First message from cold" includes opening the transport (the helper starts ${notify.which("python3")}). ` +
  `CPU per message is the steady state after it: this process, the helper, the systemd-notify processes it reaped (/proc, 10 ms ticks, ` +
  `averaged over the run). \`npm run bench:hosts\`.`,
  "",
  "| transport | first message from cold (ms) | round trip, median (ms) | × native | CPU per message (ms) | sent by |",
  "| --- | --- | --- | --- | --- | --- |",
  ...results.map((r) =>
    `| ${r.transport} | ${fixed(r.firstMillis)} | ${fixed(r.medianRoundTripMillis)} | ${fixed(r.medianRoundTripMillis / native.medianRoundTripMillis)} | ` +
    `${fixed(r.cpuPerMessageMillis)} | ${r.sender} |`
  ),
  ""
].join("\n")
writeFileSync(new URL("./results.md", import.meta.url), md)
writeFileSync(new URL("./results.json", import.meta.url), JSON.stringify({ messages: MESSAGES, node: process.versions.node, python3: notify.which("python3"), results }, null, 2) + "\n")
console.log(md)
