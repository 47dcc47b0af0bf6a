/**
 * Under a parent process — PM2, Node's cluster, a supervisor that forked it —
 * `Main.runMain` sends `'ready'` once the program runs (PM2's `wait_ready`)
 * and takes PM2's `'shutdown'` message as a signal. The library's layers send
 * nothing on their own: under another runner the parent hears nothing. Real
 * child processes with an IPC channel.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { once } from "node:events"
import { setTimeout as sleep } from "node:timers/promises"
import { get } from "../support/http.ts"
import { type Child, fixture, start } from "./harness.ts"

let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

const port = async (child: Child) => {
  await child.waitFor(/LISTENING port=\d+/)
  return Number(/LISTENING port=(\d+)/.exec(child.output())![1])
}

/** Asks readiness until it answers 200 (the phase is `running`). */
const running = async (port: number) => {
  for (let i = 0; i < 500; i++) {
    if ((await get(port, "/readyz")).status === 200) return
    await sleep(20)
  }
  throw new Error("never ready")
}

describe("Main.runMain under a parent process", () => {
  it("sends 'ready' once the program runs, not when the first server listens; 'shutdown' shuts it down cleanly", async () => {
    child = start(fixture("pm2.ts"), {}, { ipc: true })
    const web = await port(child)
    const whileStarting = await get(web, "/readyz")
    const [message] = await once(child.process, "message") as [unknown]
    const outputAtReady = child.output()
    const atReady = await get(web, "/readyz")
    child.send("shutdown")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(message, "ready")
    assert.strictEqual(whileStarting.status, 503, "the server listened while the program was still starting")
    assert.include(outputAtReady, "STARTED", "every layer was built before 'ready'")
    assert.strictEqual(atReady.status, 200)
    assert.strictEqual(code, 0, output)
    assert.match(output, /shutdown report: requested: shutdown message, graceful, exit 0/)
    assert.deepStrictEqual(child.messages(), ["ready"], "nothing else is sent")
  })

  it("sendReady: false sends nothing", async () => {
    child = start(fixture("pm2.ts"), { SEND_READY: "0" }, { ipc: true })
    await running(await port(child))
    child.send("shutdown")
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.deepStrictEqual(child.messages(), [])
  })

  it("under NodeRuntime.runMain with Quit.layer, the layers send nothing", async () => {
    child = start(fixture("pm2.ts"), { RUNNER: "node" }, { ipc: true })
    await running(await port(child))
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 130, child.output())
    assert.deepStrictEqual(child.messages(), [])
  })
})
