/**
 * The package as users get it: `npm run build` emits dist/ (.js and .d.ts),
 * and a plain JavaScript program imports it by name and runs on it. Then as
 * users install it: `npm pack` (which builds dist/ itself, through `prepack`)
 * gives a tarball that `npm install` puts into a fresh project beside its
 * peers, where the README's quick start type-checks, runs, and drains on a
 * real SIGTERM.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { execFile, spawn } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { type Child, fixture, start } from "./harness.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))

describe("the built package", () => {
  beforeAll(async () => {
    await promisify(execFile)(process.execPath, [`${root}node_modules/typescript/bin/tsc`, "-p", "tsconfig.build.json"], {
      cwd: root
    })
  }, 60_000)

  it("emits JavaScript and declarations for every module", () => {
    for (const name of ["index", "Quit", "Main", "Shutdown", "Options", "Report"]) {
      assert.isTrue(existsSync(`${root}dist/${name}.js`), `${name}.js`)
      assert.isTrue(existsSync(`${root}dist/${name}.d.ts`), `${name}.d.ts`)
    }
    assert.include(readFileSync(`${root}dist/index.js`, "utf8"), `from "./Quit.js"`, "imports are rewritten to .js")
  })

  it("runs a plain JavaScript program that imports it by name", async () => {
    const child = start(fixture("plain.mjs"))
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.match(child.output(), /db\s+closer\s+done/)
  })
})

/** Runs a command with no stdin (as in CI); its output, or an error that includes it. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  new Promise<{ readonly stdout: string; readonly stderr: string }>((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...process.env, CI: "true" }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => stdout += chunk.toString())
    child.stderr.on("data", (chunk: Buffer) => stderr += chunk.toString())
    child.on("error", reject)
    child.on("close", (code) =>
      code === 0
        ? resolve({ stdout, stderr })
        : reject(new Error(`${command} ${args.join(" ")} (in ${cwd}) exited ${code}:\n${stdout}\n${stderr}`))
    )
  })

/** The version of a package installed in `dir`. */
const installedIn = (dir: string, name: string): string =>
  (JSON.parse(readFileSync(join(dir, "node_modules", name, "package.json"), "utf8")) as { readonly version: string }).version

// A port found free, not PORT=0: `Http.layerConfig` reads PORT with Effect's `Config.Port`, which
// refuses 0 (1–65535).
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = Net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
      const address = probe.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      probe.close(() => resolve(port))
    })
  })

interface Packed {
  readonly filename: string
  readonly files: ReadonlyArray<{ readonly path: string }>
}

describe("the packed tarball, installed into a fresh project", () => {
  const temp = mkdtempSync(join(tmpdir(), "effect-graceful-package-"))
  const project = join(temp, "app")
  const children: Array<Child> = []
  let packed: Packed

  beforeAll(async () => {
    // Without dist/, so that the tarball holds it only if `prepack` built it.
    rmSync(`${root}dist`, { recursive: true, force: true })
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", temp], root)
    packed = (JSON.parse(stdout) as ReadonlyArray<Packed>)[0]!
    mkdirSync(project)
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "quick-start", private: true, type: "module" }))
    // The README's install line, as users type it: npm resolves the peers
    // today (the newest in the package's ranges), not this repository's lockfile.
    await run("npm", [
      "install",
      "--no-audit",
      "--no-fund",
      join(temp, packed.filename),
      "effect",
      "@effect/platform-node",
      "@types/node@24"
    ], project)
    copyFileSync(`${root}examples/readme/quick-start.ts`, join(project, "quick-start.ts"))
  }, 300_000)

  afterAll(() => {
    for (const child of children.splice(0)) child.process.kill("SIGKILL")
    rmSync(temp, { recursive: true, force: true })
  })

  it("npm pack builds dist/ itself (prepack): every export of package.json is in the tarball, tests are not", () => {
    const paths = new Set(packed.files.map((file) => file.path))
    const manifest = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as {
      readonly exports: Record<string, string | Record<string, string>>
    }
    const targets = Object.values(manifest.exports).flatMap((target) =>
      typeof target === "string" ? [target] : Object.values(target)
    )
    assert.includeMembers(targets, ["./dist/index.js", "./dist/index.d.ts", "./dist/Grpc.js", "./dist/Grpc.d.ts"])
    for (const target of targets) assert.isTrue(paths.has(target.replace(/^\.\//, "")), target)
    assert.deepStrictEqual([...paths].filter((path) => path.startsWith("test/") || path.startsWith("examples/")), [])
  })

  it("npm resolved effect and @effect/platform-node inside the package's peer ranges", () => {
    const manifest = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as {
      readonly peerDependencies: Record<string, string>
    }
    for (const name of ["effect", "@effect/platform-node"]) {
      const version = installedIn(project, name)
      const floor = manifest.peerDependencies[name]!.replace(/^\^/, "")
      const [major, minor, patch] = version.split(".").map(Number)
      const [fMajor, fMinor, fPatch] = floor.split(".").map(Number)
      assert.strictEqual(major, fMajor, `${name} ${version}: the major of ^${floor}`)
      assert.isTrue(minor! > fMinor! || (minor === fMinor && patch! >= fPatch!), `${name} ${version} >= ${floor}`)
    }
  })

  it("the main entry needs none of the gRPC peers; effect-graceful/Grpc does", async () => {
    assert.isFalse(existsSync(join(project, "node_modules/@grpc/grpc-js")), "optional peers are not installed")
    writeFileSync(join(project, "main.mjs"), `console.log(Object.keys(await import("effect-graceful")).join(" "))\n`)
    writeFileSync(join(project, "grpc.mjs"), `await import("effect-graceful/Grpc")\n`)
    const { stdout } = await run(process.execPath, ["main.mjs"], project)
    assert.includeMembers(stdout.trim().split(" "), ["Closer", "Http", "Main", "Quit", "Worker"])
    const grpc = await run(process.execPath, ["grpc.mjs"], project).then(() => "", (error: Error) => error.message)
    assert.match(grpc, /ERR_MODULE_NOT_FOUND[\s\S]*'@grpc\//)
    // The broker entry points likewise need their client, and only theirs.
    for (const [entry, client] of [["BullMQ", "bullmq"], ["Amqp", "amqplib"], ["Nats", "nats"]] as const) {
      writeFileSync(join(project, `${entry}.mjs`), `await import("effect-graceful/${entry}")\n`)
      const failed = await run(process.execPath, [`${entry}.mjs`], project).then(() => "", (error: Error) => error.message)
      assert.match(failed, new RegExp(`ERR_MODULE_NOT_FOUND[\\s\\S]*'${client}'`), entry)
    }
  })

  it("the quick start type-checks against the shipped declarations (module nodenext, strict)", async () => {
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "nodenext", strict: true, noEmit: true, types: ["node"] },
        files: ["quick-start.ts"]
      })
    )
    await run(process.execPath, [`${root}node_modules/typescript/bin/tsc`, "-p", "tsconfig.json"], project)
  }, 60_000)

  it("the README's quick start runs there on PORT and drains on SIGTERM: exit 0 and the report", async () => {
    const port = await freePort()
    const child = start(join(project, "quick-start.ts"), { PORT: String(port), HOST: "127.0.0.1" })
    children.push(child)
    await child.waitFor(/Listening on \S+/)
    assert.match(child.output(), new RegExp(`Listening on http://127\\.0\\.0\\.1:${port}\\b`))
    const hello = await fetch(`http://127.0.0.1:${port}/`)
    assert.strictEqual(await hello.text(), "hello")
    child.signal("SIGTERM")
    await child.waitFor(/quit event \(SIGTERM\)/)
    // Inside the drain delay (5 s): readiness fails, requests are still served.
    assert.strictEqual((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503)
    assert.strictEqual(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "hello")
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 0, output)
    assert.match(output, /shutdown report: SIGTERM, graceful, exit 0/)
    assert.match(output, /database\s+closer\s+done/)
    assert.match(output, /ticker\s+worker\s+done/)
    assert.match(output, /http\s+http\s+done/)
    assert.include(output, "database closed")
    assert.isBelow(output.indexOf("database closed"), output.indexOf("shutdown report"), "the database closed before the report")
  }, 60_000)
})
