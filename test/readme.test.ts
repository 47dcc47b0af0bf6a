/**
 * Every TypeScript snippet in the README is a file under examples/readme/
 * (type-checked by `npm run typecheck`, and run by vitest when it is a test),
 * quoted exactly; and every such file is quoted.
 */
import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import * as Grpc from "../src/Grpc.ts"
import * as Library from "../src/index.ts"

const root = new URL("../", import.meta.url)
const readme = readFileSync(new URL("README.md", root), "utf8")
const snippet = /<!-- (examples\/readme\/[\w.-]+\.ts) -->\n```ts\n([\s\S]*?)```/g

describe("the README", () => {
  it("quotes each TypeScript snippet from its file under examples/readme/, exactly", () => {
    const quoted = [...readme.matchAll(snippet)]
    const blocks = readme.match(/```ts\n/g) ?? []
    assert.strictEqual(quoted.length, blocks.length, "every ```ts block names its file")
    for (const [, file, body] of quoted) {
      assert.strictEqual(body, readFileSync(new URL(file!, root), "utf8"), file)
    }
    const files = readdirSync(new URL("examples/readme/", root)).map((name) => `examples/readme/${name}`)
    assert.sameMembers(quoted.map(([, file]) => file!), files, "every snippet file is quoted")
  })

  it("names every export of every public module in its API table", () => {
    const table = readme.slice(readme.indexOf("## API at a glance"), readme.indexOf("## From the Go quit package"))
    const modules: Record<string, object> = { ...Library, Grpc }
    const missing = Object.entries(modules).flatMap(([module, exports]) =>
      Object.keys(exports).map((name) => `${module}.${name}`).filter((name) => !table.includes(`\`${name}\``))
    )
    assert.deepStrictEqual(missing, [])
  })

  it("starts with the two commands of a fresh machine", () => {
    const first = /```sh\n([\s\S]*?)```/.exec(readme)![1]!
    assert.match(first, /^npm ci && npm start\s/m)
    assert.match(first, /^npm ci && npm test\s/m)
  })
})
