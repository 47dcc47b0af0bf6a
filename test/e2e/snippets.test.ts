/**
 * Every snippet of the README and docs/ and every JSDoc `@example` that is a
 * program runs, as it is, in a process of its own, and keeps its promise
 * under a real SIGTERM: it starts, becomes ready,
 * and drains — exit 0 and a graceful report in which nothing was cut,
 * abandoned, timed out or failed (NodeRuntime.runMain: its own 130, the
 * closers run). A snippet that loses work, hangs or cannot start fails here.
 *
 * The snippets are the files under examples/readme/ (test/readme.test.ts
 * checks that the README and the pages under docs/ quote them exactly, and
 * that every one of them is quoted); the JSDoc programs are written to
 * bench/.tmp/jsdoc-programs/ (inside the repository, so that their imports
 * resolve). A program that starts nothing observable under another runner
 * (no server, no 'ready') cannot be told apart from a hung one and is left
 * to test/docs.test.ts's type-check. A preload (fixtures/snippet.ts)
 * resolves `effect-graceful` to src/ and moves fixed ports to free ones;
 * DRAIN_DELAY=300ms from the environment overrides the snippets' 5 s, as the
 * environment does in production.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { copyFileSync, readdirSync, readFileSync } from "node:fs"
import { once } from "node:events"
import { fileURLToPath } from "node:url"
import { get } from "../support/http.ts"
import { writeExamples } from "../support/jsdoc.ts"
import { tempDir } from "../support/temp.ts"
import { type Child, fixture, start } from "./harness.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const dir = `${root}examples/readme/`
const isProgram = (code: string) => /\b(Main|NodeRuntime)\.runMain\(/.test(code)
const snippets = readdirSync(dir).filter((name) => name.endsWith(".ts") && isProgram(readFileSync(dir + name, "utf8")))

const jsdocDir = `${root}bench/.tmp/jsdoc-programs/`
const written = writeExamples(`${root}src`, jsdocDir)
// Programs that show they run: under Main.runMain ('ready'), or serving HTTP (readiness).
const jsdoc = written
  .filter(({ code }) => isProgram(code) && (code.includes("Main.runMain(") || /\bHttp\.layer|Health\.layer/.test(code)))
  .map(({ name }) => name)
const fragments = written.filter(({ code }) => !isProgram(code)).map(({ name }) => name)

let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

const listening = (child: Child) => [...child.output().matchAll(/SNIPPET LISTEN (\d+)/g)].map((match) => Number(match[1]))


const runs = (file: string) => {
  const underNodeRuntime = readFileSync(file, "utf8").includes("NodeRuntime.runMain(")
  return async () => {
    const cwd = tempDir("snippet")
    copyFileSync(`${root}examples/proto/greeter.proto`, `${cwd}/greeter.proto`)
    child = start(file, { DRAIN_DELAY: "300ms" }, { ipc: true, cwd, execArgv: ["--import", fixture("snippet.ts")] })
    if (underNodeRuntime) {
      // Quit.layer is built (phase running) before the server on it listens.
      await child.waitFor(/SNIPPET LISTEN \d+/)
      assert.strictEqual((await get(listening(child)[0]!, "/readyz")).status, 200)
    } else {
      const [message] = await once(child.process, "message") as [unknown]
      assert.strictEqual(message, "ready")
    }
    child.signal("SIGTERM")
    const { code } = await child.exited()
    const output = child.output()
    if (underNodeRuntime) {
      assert.strictEqual(code, 130, output)
      assert.match(output, /closed/, "the closers ran")
      return
    }
    assert.strictEqual(code, 0, output)
    assert.match(output, /shutdown report: SIGTERM, graceful, exit 0/)
    const rows = output.slice(output.indexOf("shutdown report:")).split("\n").slice(2).filter((line) => /^\s{2}\S/.test(line))
    assert.isAbove(rows.length, 0, output)
    for (const row of rows) assert.notMatch(row, /\b(cut|abandoned|timed out|failed)\b/, output)
  }
}

describe("the snippets of the README and docs/, run", () => {
  it("finds the programs among them: the README's and the docs' alike", () => {
    const quoted = ["README.md", ...readdirSync(`${root}docs`).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)]
      .flatMap((page) => [...readFileSync(root + page, "utf8").matchAll(/<!-- examples\/readme\/([\w.-]+\.ts) -->\n```ts\n/g)].map(([, name]) => name!))
    const programs = quoted.filter((name) => isProgram(readFileSync(dir + name, "utf8")))
    assert.includeMembers(programs, ["quick-start.ts", "http.ts", "fastify.ts", "grpc.ts", "jobs.ts", "node-runtime.ts", "readiness.ts", "telemetry.ts"])
    assert.sameMembers(snippets, [...new Set(programs)], "every program quoted is run, and every one run is quoted")
  })
  for (const name of snippets) it(`${name}: starts, is ready, and drains on SIGTERM, losing nothing`, runs(dir + name))
})

describe("the JSDoc examples that are not programs, evaluated", () => {
  it("each module's code runs without throwing", async () => {
    const cwd = tempDir("fragments")
    child = start(fixture("evaluate.ts"), {}, {
      cwd,
      execArgv: ["--import", fixture("snippet.ts")],
      args: fragments.map((name) => jsdocDir + name)
    })
    const { code } = await child.exited(60_000)
    const output = child.output()
    assert.strictEqual(code, 0, output)
    assert.isAbove(fragments.length, 30)
    assert.deepStrictEqual(output.match(/^FAILED .*$/gm) ?? [], [])
    assert.strictEqual(output.match(/^EVALUATED /gm)?.length, fragments.length, output)
  }, 90_000)
})

describe("the JSDoc examples that are programs, run", () => {
  it("finds them", () => assert.isAtLeast(jsdoc.length, 10))
  for (const name of jsdoc) it(`${name}: starts, is ready, and drains on SIGTERM, losing nothing`, runs(jsdocDir + name))
})
