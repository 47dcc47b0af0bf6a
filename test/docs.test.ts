/**
 * Every `@example` in the public modules' JSDoc compiles against the library
 * as it is: each is written to a file of its own (imports of
 * `effect-graceful` resolved to src/, as the README's snippets are) and the
 * lot type-checked with the project's settings. An example that names an
 * export that is gone, or calls one with the wrong shape, fails the suite.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { writeExamples } from "./support/jsdoc.ts"

const root = fileURLToPath(new URL("../", import.meta.url))
const out = join(root, "bench/.tmp/jsdoc-examples")

describe("the JSDoc examples", () => {
  it("each compiles against the library", async () => {
    const count = writeExamples(join(root, "src"), out).length
    writeFileSync(
      join(out, "tsconfig.json"),
      JSON.stringify({
        extends: "../../../tsconfig.json",
        compilerOptions: { noUnusedLocals: false, noUnusedParameters: false },
        include: ["./*.ts"]
      })
    )
    const tsc = promisify(execFile)(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(out, "tsconfig.json")], {
      cwd: root
    }).then(() => "", (error: { stdout?: string }) => error.stdout ?? String(error))
    const errors = await tsc
    assert.isAbove(count, 40, "the examples were found")
    assert.strictEqual(errors, "", `examples that do not compile (files in ${out}):\n${errors}`)
  }, 120_000)
})
