/**
 * systemd's notify protocol with real signals: a Unix datagram socket of the
 * test's own (python3) as NOTIFY_SOCKET, and the fixture under Main.runMain.
 * The messages and their order: READY=1 once the server listens (the socket
 * probes the port the moment READY arrives) and readiness passes; WATCHDOG=1
 * from the event loop (none while it is blocked); STOPPING=1 with
 * EXTEND_TIMEOUT_USEC at the quit event, the progress in STATUS= while
 * draining, STATUS=stopped last.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import * as Net from "node:net"
import { get } from "../support/http.ts"
import { installOptional } from "../support/optional.ts"
import { fields, type NotifySocket, notifySocket } from "../support/notifySocket.ts"
import { type Child, fixture, start } from "./harness.ts"

const children: Array<Child> = []
const sockets: Array<NotifySocket> = []
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill("SIGKILL")
  for (const socket of sockets.splice(0)) socket.close()
})

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = Net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
      const port = (probe.address() as Net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })

const NODE_UNIX_SOCKET = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  readonly peerDependencies: Record<string, string>
}).peerDependencies["node-unix-socket"] ?? "*"

const SHUTDOWN_MICROS = 4_000_000
const MARGIN_MICROS = 5_000_000

// Who sends: the main process itself (native); a process of its own (the
// helper: NotifyAccess=all); systemd-notify, which as root sends with its
// parent's PID (its own BARRIER=1 aside).
const root = process.getuid?.() === 0
const TRANSPORTS = [
  { transport: "native", fromMain: true },
  { transport: "helper", fromMain: false },
  { transport: "systemd-notify", fromMain: root }
] as const

describe("systemd notifications (NOTIFY_SOCKET)", () => {
  it.each(TRANSPORTS)("$transport: READY=1 after listening and readiness; WATCHDOG=1 stops while the loop is blocked; STOPPING=1, EXTEND_TIMEOUT_USEC and the progress at SIGTERM", async ({ fromMain, transport }) => {
    const port = await freePort()
    const notify = await notifySocket({ probePort: port })
    sockets.push(notify)
    const child = start(fixture("systemd.ts"), {
      NOTIFY_SOCKET: notify.path,
      WATCHDOG_USEC: "400000",
      PORT: String(port),
      CHECK_FAILS: "1",
      SHUTDOWN_TIMEOUT: "4s",
      PROGRESS_INTERVAL: "300ms",
      SYSTEMD_NOTIFY_TRANSPORT: transport,
      // The native transport's optional peer, installed beside the project (see test/support/optional.ts).
      ...(transport === "native" ? { NODE_PATH: installOptional("node-unix-socket", NODE_UNIX_SOCKET) } : {})
    })
    children.push(child)

    // Assertions are on lines, in order, as systemd reads them: systemd-notify sends what queued
    // while it was busy as one message.
    const lines = () => notify.messages().flatMap((text) => text.split("\n"))
    const afterLine = (line: string, from = 0) => lines().indexOf(line, from)
    const waitLine = (line: string) => notify.waitFor((text) => text.split("\n").includes(line))

    const ready = await waitLine("READY=1")
    assert.deepStrictEqual(
      [fields(ready)["READY"], fields(ready)["MAINPID"], ready.split("\n").filter((l) => l.startsWith("STATUS="))[0]],
      ["1", String(child.process.pid), "STATUS=running"]
    )
    // The port accepted a connection the moment READY arrived: the server listened before.
    assert.deepStrictEqual(await notify.probed(), { kind: "probe", connected: true, error: null })
    // The readiness check failed once before: READY waited for it to pass.
    assert.match(child.output(), /readiness check warm failing/)

    // Pings before the block, none while the event loop is blocked, pings again after.
    await notify.waitFor(() => lines().filter((l) => l === "WATCHDOG=1").length >= 2)
    const blocked = await get(port, "/block?ms=1500")
    assert.strictEqual(blocked.body, "unblocked")
    // Sent from the event loop: what it sent while blocked arrives at the latest with the pings after.
    await waitLine("STATUS=unblocked")
    await notify.waitFor(() => lines().lastIndexOf("WATCHDOG=1") > lines().indexOf("STATUS=unblocked"))
    const from = afterLine("STATUS=blocking")
    const to = afterLine("STATUS=unblocked")
    assert.isAbove(from, afterLine("READY=1"), JSON.stringify(lines()))
    assert.isAbove(to, from)
    assert.deepStrictEqual(lines().slice(from + 1, to), [], "no WATCHDOG=1 while the event loop was blocked")
    assert.isAtLeast(lines().slice(0, from).filter((l) => l === "WATCHDOG=1").length, 2)

    // SIGTERM with a request in flight: STOPPING at the quit event, the progress while it drains.
    const slow = get(port, "/slow?ms=1500")
    await new Promise((resolve) => setTimeout(resolve, 200))
    child.signal("SIGTERM")
    const reply = await slow
    assert.strictEqual(reply.status, 200)
    const { code } = await child.exited()
    assert.strictEqual(code, 0)
    // systemd-notify spawns one at a time: what is still queued at the exit is lost.
    const lastWord = transport !== "systemd-notify"
    if (lastWord) await waitLine("STATUS=stopped")

    const all = lines()
    const stopping = all.indexOf("STOPPING=1")
    assert.isAbove(stopping, all.indexOf("READY=1"), JSON.stringify(all))
    const after = all.slice(stopping + 1)
    assert.match(after.find((l) => l.startsWith("STATUS="))!, /^STATUS=stopping \(SIGTERM\); listeners close in 0\.0 s, shutdown deadline in 4\.0 s$/)
    const extend = Number(after.find((l) => l.startsWith("EXTEND_TIMEOUT_USEC="))!.split("=")[1])
    assert.isAtLeast(extend, SHUTDOWN_MICROS, "systemd waits at least until the shutdown deadline")
    assert.isAtMost(extend, SHUTDOWN_MICROS + MARGIN_MICROS)
    const statuses = after.filter((l) => l.startsWith("STATUS=")).slice(1)
    assert.isAtLeast(statuses.length, 1)
    assert.match(statuses[0]!, /^STATUS=shutting down for \d+\.\d s; waiting on http \(http, closing, 1 in flight\); /)
    if (lastWord) assert.strictEqual(statuses[statuses.length - 1], "STATUS=stopped")
    const senders = new Set(notify.received().flatMap((r) => r.kind === "message" && r.text !== "BARRIER=1" ? [r.pid] : []))
    if (fromMain) assert.deepStrictEqual([...senders], [child.process.pid])
    else assert.notInclude([...senders], child.process.pid)
  })
})
