/**
 * The signal and exit-code contract of Main.runMain, with real signals sent to
 * child processes.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, watch } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { type Child, fixture, start } from "./harness.ts"

const service = fixture("service.ts")
const children: Array<Child> = []
const run = (env: Record<string, string> = {}) => {
  const child = start(service, env)
  children.push(child)
  return child
}
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill("SIGKILL")
})

// The output goes to a file in that test: read it at each change of its
// folder until the line is there (watched before the first read, so that no
// write falls between the two).
const waitForFile = (file: string, pattern: RegExp): Promise<void> =>
  new Promise((resolve) => {
    const found = () => {
      let text = ""
      try {
        text = readFileSync(file, "utf8")
      } catch {
        return
      }
      if (!pattern.test(text)) return
      watcher.close()
      resolve()
    }
    const watcher = watch(dirname(file), found)
    found()
  })

// The fixture's answer: the first message that is not Main's own 'ready'.
const answerOf = (child: Child): Promise<unknown> =>
  new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if (typeof message !== "object" || message === null) return
      child.process.off("message", onMessage)
      resolve(message)
    }
    child.process.on("message", onMessage)
  })

const reportLine = (output: string) => output.split("\n").find((line) => line.includes("shutdown report:")) ?? ""
const row = (output: string, name: string) =>
  output.split("\n").find((line) => line.trimStart().startsWith(`${name} `)) ?? ""

describe("Main.runMain with real signals", () => {
  it("stdout closed by its reader (EPIPE): logging goes on without failing the program, and SIGTERM still exits 0", async () => {
    const child = start(fixture("output.ts"), {}, { ipc: true })
    children.push(child)
    await child.waitFor(/READY/)
    // Nobody reads the child's stdout any more: its next write fails with EPIPE.
    child.process.stdout!.destroy()
    const answer = answerOf(child)
    child.send("log")
    assert.deepStrictEqual(await answer, { fired: false }, "a line nobody reads fired the quit event")
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.notInclude(child.output(), "uncaught exception")
  })

  it("SIGTERM: the unit in flight finishes, resources close in order, exit 0 with the report", async () => {
    const child = run({ UNIT_MS: "400", CLOSE_MS: "50" })
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 0, output)
    assert.include(output, "unit done")
    assert.notInclude(output, "unit interrupted")
    assert.isBelow(output.indexOf("unit done"), output.indexOf("db closed"), "the db closes after the worker using it")
    assert.include(reportLine(output), "shutdown report: SIGTERM, graceful, exit 0")
    assert.match(row(output, "jobs"), /worker\s+done\s+\d+\s+1 → 0/)
    assert.match(row(output, "db"), /closer\s+done/)
  })

  it("output written through a stream that buffers (PM2's cluster mode) is all out before the exit", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "effect-graceful-")), "out.log")
    const child = start(service, { LOG_FILE: file, CLOSE_MS: "0" }, { execArgv: ["--import", fixture("logFile.ts")] })
    children.push(child)
    await waitForFile(file, /READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = readFileSync(file, "utf8")
    assert.strictEqual(code, 0, output)
    assert.include(reportLine(output), "shutdown report: SIGTERM, graceful, exit 0")
    assert.match(row(output, "db"), /closer\s+done/, "the report's last row")
  })

  it("a step of the system clock during the shutdown moves no deadline: the unit in flight finishes, exit 0", async () => {
    // An hour ahead right after the quit event: every deadline read off the
    // wall clock would have passed, and the unit been cut at once.
    const child = start(service, { UNIT_MS: "1500", DRAIN_DELAY: "100ms" }, { execArgv: ["--import", fixture("clockStep.ts")] })
    children.push(child)
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.match(output, /CLOCK STEPPED[\s\S]*unit done/, "the unit ends after the step")
    assert.notInclude(output, "unit interrupted")
    assert.match(row(output, "jobs"), /worker\s+done/)
    assert.strictEqual(code, 0, output)
  })

  it("SIGINT (Ctrl-C) is handled the same way: exit 0", async () => {
    const child = run()
    await child.waitFor(/READY/)
    child.signal("SIGINT")
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.include(reportLine(child.output()), "shutdown report: SIGINT, graceful, exit 0")
  })

  it("a hung closer is abandoned at the close timeout derived from SHUTDOWN_TIMEOUT alone: the rest close, exit 1", async () => {
    // SHUTDOWN_TIMEOUT=1s alone: drain timeout 666 ms and close timeout 166 ms are derived from it.
    const child = run({ HUNG: "1", SHUTDOWN_TIMEOUT: "1s" })
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, "broker (closer) did not close within 166ms; abandoned")
    assert.notInclude(output, "shutdown timeout of 1s passed")
    assert.match(row(output, "broker"), /closer\s+timed out\s+\d+\s+-\s+abandoned after 166ms/)
    assert.include(reportLine(output), "shutdown report: SIGTERM, graceful, exit 1")
  })

  it("a finalizer of the program's own that hangs: exit 1 at the shutdown deadline, naming what is still open", async () => {
    const child = run({ STUCK: "1", SHUTDOWN_TIMEOUT: "1s" })
    await child.waitFor(/READY/)
    const sent = child.signal("SIGTERM")
    const { at, code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.isAtLeast(at - sent, 1000)
    assert.include(output, "shutdown timeout of 1s passed")
    assert.match(output, /still open: .*db \(closer, not yet closing\)/, "the db waits for its users")
    assert.match(row(output, "db"), /closer\s+abandoned\s+-\s+-\s+never began closing/)
  })

  it("a closer past its own timeout is abandoned and named; the rest close; exit 1", async () => {
    const child = run({ HUNG: "1", HUNG_TIMEOUT: "300ms" })
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, "broker (closer) did not close within 300ms; abandoned")
    assert.match(row(output, "broker"), /closer\s+timed out/)
    assert.include(output, "db closed")
  })

  for (const [signal, expected] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    it(`a second ${signal} during shutdown exits at once with ${expected}`, async () => {
      const child = run({ HUNG: "1" })
      await child.waitFor(/READY/)
      child.signal(signal)
      await child.waitFor(/quit event/)
      child.signal(signal)
      const { code } = await child.exited()
      const output = child.output()
      assert.strictEqual(code, expected, output)
      // Promptly: before the hung broker's close timeout (5 s, derived) would have abandoned it.
      assert.notInclude(output, "broker (closer) did not close within", "exited before the hung closer was abandoned")
      assert.include(reportLine(output), `shutdown report: ${signal}, forced, exit ${expected}`)
      assert.include(output, `${signal} received again during shutdown; exiting now`)
      assert.match(output, /still open: .*broker \(closer, closing\)/)
    })
  }

  it("a signal during startup releases what was acquired and exits 0", async () => {
    const child = run({ STARTUP_MS: "20000", DRAIN_DELAY: "10s", SHUTDOWN_TIMEOUT: "15s" })
    await child.waitFor(/acquired early/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 0, output)
    assert.include(output, "quit event (SIGTERM): draining; listeners close in 0, ", "the drain delay does not apply before the service is ready")
    assert.include(reportLine(output), "shutdown report: SIGTERM, graceful, exit 0")
    assert.include(output, "early closed")
    assert.include(output, "db closed")
    assert.notInclude(output, "READY")
    assert.notInclude(output, "startup finished")
  })

  it("an uncaught exception outside Effect drains everything and exits 1", async () => {
    const child = run({ THROW_MS: "300", UNIT_MS: "200" })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, "uncaught exception outside Effect; shutting down")
    assert.include(output, "boom outside Effect")
    assert.include(output, "db closed")
    assert.include(reportLine(output), "failure: uncaught exception")
  })

  it("an error thrown on the next tick by the last close is logged and makes the exit 1", async () => {
    const child = run({ LATE_THROW: "1" })
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, "thrown after the close")
    assert.include(reportLine(output), "exit 1")
  })

  it("an unhandled rejection outside Effect drains everything and exits 1", async () => {
    const child = run({ REJECT_MS: "300", UNIT_MS: "600" })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, "unhandled rejection outside Effect; shutting down")
    assert.include(output, "rejected outside Effect")
    assert.include(output, "unit done", "the unit in flight finished")
    assert.isBelow(output.indexOf("unit done"), output.indexOf("db closed"))
    assert.include(reportLine(output), "failure: unhandled rejection")
  })

  it("bad configuration: exit 1 with the variable and the value, before anything starts", async () => {
    const child = run({ DRAIN_TIMEOUT: "forever" })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, `invalid configuration: DRAIN_TIMEOUT="forever": expected a duration`)
    assert.notInclude(output, "acquired db")
  })

  it("a budget that cannot hold: exit 1 naming every variable and its value, before anything is acquired", async () => {
    const child = run({ DRAIN_DELAY: "5s", DRAIN_TIMEOUT: "30s" })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(
      output,
      `invalid configuration: DRAIN_TIMEOUT="30s": DRAIN_DELAY=5s + DRAIN_TIMEOUT=30s = 35s exceeds SHUTDOWN_TIMEOUT (30s, the default), ` +
        `leaving nothing for CLOSE_TIMEOUT; raise SHUTDOWN_TIMEOUT or lower the others`
    )
    assert.notInclude(output, "acquired db")
  })

  it("a component timeout longer than the shared one: exit 1 naming both, before the program runs; what was acquired is released", async () => {
    const child = run({ HUNG: "1", HUNG_TIMEOUT: "10s" })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(
      output,
      `invalid configuration: broker: timeout="10s": longer than CLOSE_TIMEOUT (5s, derived from SHUTDOWN_TIMEOUT): ` +
        `a component may have a shorter timeout than the shared one, never a longer one`
    )
    assert.notInclude(output, "READY")
    assert.isBelow(output.indexOf("acquired db"), output.indexOf("db closed"), "the db, acquired first, is released")
  })

  it("a drain delay keeps serving, then closes; LOG_FORMAT=json writes the report as JSON lines", async () => {
    const child = run({ DRAIN_DELAY: "600ms", LOG_FORMAT: "json" })
    await child.waitFor(/READY/)
    const sent = child.signal("SIGTERM")
    const { at, code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.isAtLeast(at - sent, 600)
    const lines = child.output().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line))
    const rows = lines.filter((line) => line.message === "shutdown report row")
    assert.deepStrictEqual(rows.map((line) => [line.annotations.name, line.annotations.outcome]).sort(), [
      ["db", "done"],
      ["jobs", "done"]
    ])
    const summary = lines.find((line) => line.message === "shutdown report")
    assert.deepInclude(summary.annotations, { reason: "SIGTERM", ending: "graceful", exitCode: 0 })
    assert.isAtLeast(summary.annotations.totalMillis, 600)
  })
})
