/**
 * The package as users get it: `npm run build` emits dist/ (.js and .d.ts),
 * and a plain JavaScript program imports it by name and runs on it.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { fixture, start } from "./harness.ts"

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
