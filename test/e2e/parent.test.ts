/**
 * Under a parent process — PM2, Node's cluster, a supervisor that forked it —
 * `Main.runMain` sends `'ready'` once the program runs (PM2's `wait_ready`)
 * and takes PM2's `'shutdown'` message as a signal. The library's layers send
 * nothing on their own: under another runner the parent hears nothing. Real
 * child processes with an IPC channel.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { once } from "node:events"
import { get } from "../support/http.ts"
import { type Child, fixture, start } from "./harness.ts"

let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

const port = async (child: Child) => {
  await child.waitFor(/LISTENING port=\d+/)
  return Number(/LISTENING port=(\d+)/.exec(child.output())![1])
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

  it.each([
    { title: "sendReady: false sends nothing", env: { SEND_READY: "0" }, stop: (c: Child): void => c.send("shutdown"), code: 0 },
    {
      title: "under NodeRuntime.runMain with Quit.layer, the layers send nothing",
      env: { RUNNER: "node" },
      stop: (c: Child): void => void c.signal("SIGTERM"),
      code: 130
    }
  ])("$title", async ({ code, env, stop }) => {
    child = start(fixture("pm2.ts"), env, { ipc: true })
    // Every layer built, and the phase `running`: a 'ready' would have gone by now.
    await child.waitFor(/STARTED/)
    await child.waitFor(/READY/)
    stop(child)
    const exited = await child.exited()
    assert.strictEqual(exited.code, code, child.output())
    assert.deepStrictEqual(child.messages(), [])
  })
})
