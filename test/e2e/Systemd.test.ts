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
import * as Net from "node:net"
import { get } from "../support/http.ts"
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
      SYSTEMD_NOTIFY_TRANSPORT: transport
    })
    children.push(child)

    const ready = await notify.waitFor((text) => text.split("\n").includes("READY=1"))
    assert.deepStrictEqual(fields(ready), { READY: "1", STATUS: "running", MAINPID: String(child.process.pid) })
    // The port accepted a connection the moment READY arrived: the server listened before.
    assert.deepStrictEqual(await notify.probed(), { kind: "probe", connected: true, error: null })
    // The readiness check failed once before: READY waited for it to pass.
    assert.match(child.output(), /readiness check warm failing/)

    // Pings before the block, none while the event loop is blocked, pings again after.
    await notify.waitFor((() => {
      let seen = 0
      return (text: string) => text === "WATCHDOG=1" && ++seen >= 2
    })())
    const blocked = await get(port, "/block?ms=1500")
    assert.strictEqual(blocked.body, "unblocked")
    // Sent from the event loop: what it sent while blocked arrives at the latest with the pings after.
    await notify.waitFor((text) => text === "STATUS=unblocked")
    await notify.waitFor((text) => text === "WATCHDOG=1" && notify.messages().indexOf("STATUS=unblocked") < notify.messages().lastIndexOf(text))
    const messages = notify.messages()
    const from = messages.indexOf("STATUS=blocking")
    const to = messages.indexOf("STATUS=unblocked")
    assert.isAbove(from, messages.indexOf(ready))
    assert.isAbove(to, from)
    assert.deepStrictEqual(messages.slice(from + 1, to), [], "no WATCHDOG=1 while the event loop was blocked")
    assert.isAtLeast(messages.slice(0, from).filter((m) => m === "WATCHDOG=1").length, 2)

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
    if (lastWord) await notify.waitFor((text) => text === "STATUS=stopped")

    const all = notify.messages()
    const stopping = all.find((text) => text.split("\n").includes("STOPPING=1"))!
    const stop = fields(stopping)
    assert.match(stop["STATUS"]!, /^stopping \(SIGTERM\); listeners close in 0\.0 s, shutdown deadline in 4\.0 s$/)
    const extend = Number(stop["EXTEND_TIMEOUT_USEC"])
    assert.isAtLeast(extend, SHUTDOWN_MICROS, "systemd waits at least until the shutdown deadline")
    assert.isAtMost(extend, SHUTDOWN_MICROS + MARGIN_MICROS)
    const statuses = all.slice(all.indexOf(stopping) + 1).filter((text) => text.startsWith("STATUS="))
    assert.isAtLeast(statuses.length, 2)
    assert.match(statuses[0]!, /^STATUS=shutting down for \d+\.\d s; waiting on http \(http, closing, 1 in flight\); /)
    if (lastWord) assert.strictEqual(statuses[statuses.length - 1], "STATUS=stopped")
    assert.isBelow(all.indexOf(ready), all.indexOf(stopping))
    const senders = new Set(notify.received().flatMap((r) => r.kind === "message" && r.text !== "BARRIER=1" ? [r.pid] : []))
    if (fromMain) assert.deepStrictEqual([...senders], [child.process.pid])
    else assert.notInclude([...senders], child.process.pid)
  })
})
