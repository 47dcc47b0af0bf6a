/**
 * Misuse that type-checks and used to lose work, each with real signals sent
 * to a child process: a signal listed twice, two Main.runMain in one process,
 * a child process outliving a forced exit, a start that fails after some
 * layers were acquired.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { request } from "node:http"
import * as Net from "node:net"
import { type Child, fixture, start } from "./harness.ts"

const children: Array<Child> = []
const run = (file: string, env: Record<string, string>) => {
  const child = start(fixture(file), env)
  children.push(child)
  return child
}
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill("SIGKILL")
})

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = Net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
      const port = (probe.address() as Net.AddressInfo).port
      probe.close(() => resolve(port))
    })
  })

const get = (port: number) =>
  new Promise<string>((resolve) => {
    request({ host: "127.0.0.1", port, agent: false }, (res) => {
      let body = ""
      res.on("data", (chunk) => body += chunk)
      res.on("end", () => resolve(body))
    }).on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message)).end()
  })

/** Whether `pid` runs: it exists and is not a zombie waiting for its new parent to reap it. */
const running = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))
  } catch {
    return false
  }
}

/** Whether `pid` still runs once a signal sent to it has had time to land. */
const outlives = async (pid: number) => {
  for (let attempt = 0; attempt < 100 && running(pid); attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
  return running(pid)
}

const row = (output: string, name: string) =>
  output.split("\n").find((line) => line.trimStart().startsWith(`${name} `)) ?? ""

describe("misuse that type-checks", () => {
  it("SHUTDOWN_SIGNALS=SIGTERM,SIGINT,SIGTERM: one SIGTERM is one signal — the unit drains, the closer runs, exit 0", async () => {
    const child = run("service.ts", { SHUTDOWN_SIGNALS: "SIGTERM,SIGINT,SIGTERM", UNIT_MS: "300" })
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 0, output)
    assert.include(output, "unit done")
    assert.match(row(output, "db"), /closer\s+done/)
  })

  it("a second Main.runMain in one process is refused, naming what to do: the second program never starts, the first releases what it acquired, exit 1", async () => {
    const port = await freePort()
    const child = run("misuse.ts", { MODE: "two-mains", HTTP_PORT_A: String(port) })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, "Main.runMain called twice in one process: compose the programs (Layer.mergeAll) and run them with one Main.runMain")
    assert.notInclude(output, "b-db closed", "the second program never started")
    assert.match(output, /shutdown report: failure: Main\.runMain called twice in one process, \w+, exit 1/)
    assert.strictEqual(await get(port), "ECONNREFUSED", "nothing is left listening")
  })

  it("a second signal forces the exit while a child process's close waits: the child is SIGKILLed before the exit", async () => {
    const child = run("misuse.ts", { MODE: "child" })
    await child.waitFor(/READY/)
    const pid = Number(/CHILD (\d+)/.exec(child.output())?.[1])
    assert.isTrue(running(pid), "the child process runs")
    child.signal("SIGTERM")
    await child.waitFor(/quit event \(SIGTERM\)/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 143, child.output())
    assert.isFalse(await outlives(pid), "the child process did not outlive the service")
  })

  it("a port in use on one of several layers: the others are released, exit 1, and the report has a row for each that was acquired", async () => {
    const holder = Net.createServer()
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve))
    const port = (holder.address() as Net.AddressInfo).port
    try {
      const child = run("misuse.ts", { MODE: "port-in-use", PORT: String(port) })
      const { code } = await child.exited()
      const output = child.output()
      assert.strictEqual(code, 1, output)
      assert.include(output, `cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`)
      assert.match(row(output, "db"), /closer\s+done/)
      assert.match(row(output, "free"), /http\s+done/)
    } finally {
      holder.close()
    }
  })

  it("PORT=abc on a server over a database layer: refused before the database is opened", async () => {
    const child = run("misuse.ts", { MODE: "config", PORT: "abc" })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, `invalid configuration: PORT="abc"`)
    assert.notInclude(output, "acquired db", "nothing was acquired")
  })

  it("on a Node older than the engines (22.19 here), one warning at start names the version and what fails", async () => {
    const child = start(fixture("service.ts"), {}, { execArgv: ["--import", fixture("oldNode.ts")] })
    children.push(child)
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 0, output)
    const warning = "Node 22.19.0 is older than effect-graceful's engines (>=24.20.0)"
    assert.strictEqual(output.split(warning).length - 1, 1, output)
    assert.isBelow(output.indexOf(warning), output.indexOf("READY"), "at start")
  })
})
