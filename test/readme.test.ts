/**
 * The README and the pages under docs/: every TypeScript snippet is a file
 * under examples/readme/ (type-checked by `npm run typecheck`, and run by
 * vitest when it is a test, by test/e2e/snippets.test.ts when it is a
 * program), quoted exactly, and every such file is quoted; every relative
 * link points at a file that exists (and at a heading that exists, when it
 * names one in a Markdown page); the README's API table names every export.
 */
import { assert, describe, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import * as Grpc from "../src/Grpc.ts"
import * as Library from "../src/index.ts"

const root = fileURLToPath(new URL("../", import.meta.url))
const read = (file: string) => readFileSync(join(root, file), "utf8")
const readme = read("README.md")
const pages = ["README.md", ...readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)]

const snippet = /<!-- (examples\/readme\/[\w.-]+\.ts) -->\n```ts\n([\s\S]*?)```/g
/** Fences of TypeScript (or JavaScript) code, whatever their marker says. */
const codeFence = /^```(ts|typescript|tsx|js|javascript|mjs)\s*$/gm

/** The page without its fenced code blocks. */
const withoutBlocks = (text: string) => text.replace(/^```[\s\S]*?^```/gm, "")
/** The page without its code, blocks and inline, where a `[x](y)` is not a link. */
const prose = (text: string) => withoutBlocks(text).replace(/`[^`\n]*`/g, "")

/** GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as dashes, repeats numbered. */
const anchors = (text: string): Set<string> => {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  for (const [, heading] of withoutBlocks(text).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = heading!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-")
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    result.add(count === 0 ? base : `${base}-${count}`)
  }
  return result
}

/** Every relative link of a page that does not resolve: a missing file, or a missing heading in a Markdown page. */
const brokenLinks = (page: string, text: string, exists: (path: string) => boolean, readPage: (path: string) => string) =>
  [...prose(text).matchAll(/\]\(([^)\s]+)\)/g)].map(([, target]) => target!).filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target)).flatMap(
    (target) => {
      const [path, anchor] = target.split("#") as [string, string | undefined]
      const file = path === "" ? page : relative(root, join(root, dirname(page), path))
      if (!exists(file)) return [`${page}: ${target} (no file ${file})`]
      if (anchor !== undefined && file.endsWith(".md") && !anchors(readPage(file)).has(anchor)) {
        return [`${page}: ${target} (no heading #${anchor} in ${file})`]
      }
      return []
    }
  )

describe("the README and docs/", () => {
  it("quote each TypeScript snippet from its file under examples/readme/, exactly", () => {
    const quoted = pages.flatMap((page) => {
      const text = read(page)
      const found = [...text.matchAll(snippet)]
      assert.strictEqual(found.length, text.match(codeFence)?.length ?? 0, `every code block of ${page} is a \`\`\`ts block that names its file`)
      for (const [, file, body] of found) assert.strictEqual(body, read(file!), `${page} quotes ${file}`)
      return found.map(([, file]) => file!)
    })
    const files = readdirSync(join(root, "examples/readme")).map((name) => `examples/readme/${name}`)
    assert.sameMembers([...new Set(quoted)], files, "every snippet file is quoted")
  })

  it("link only to files and headings that exist", () => {
    const broken = pages.flatMap((page) => brokenLinks(page, read(page), (path) => existsSync(join(root, path)), read))
    assert.deepStrictEqual(broken, [])
    assert.isAbove(pages.length, 10, "the docs pages were found")
  })

  it("the link check finds a missing file, a missing heading, and passes a good link", () => {
    const pagesHere: Record<string, string> = { "docs/a.md": "# A page\n\n## Its part\n\n## `Quit.fire` (code)\n\n## Its part\n", "README.md": "" }
    const exists = (path: string) => path in pagesHere
    const check = (text: string) => brokenLinks("docs/b.md", text, exists, (path) => pagesHere[path] ?? "")
    assert.deepStrictEqual(check("[ok](a.md) [ok](a.md#its-part) [ok](a.md#its-part-1) [ok](a.md#quitfire-code) [ok](../README.md)"), [])
    assert.deepStrictEqual(check("[web](https://x.y/z) `[code](nope.md)`"), [])
    assert.deepStrictEqual(check("[gone](gone.md)"), ["docs/b.md: gone.md (no file docs/gone.md)"])
    assert.deepStrictEqual(check("[gone](a.md#nothing)"), ["docs/b.md: a.md#nothing (no heading #nothing in docs/a.md)"])
    assert.deepStrictEqual(check("```ts\n[x](in-code.md)\n```\n[gone](../nope/x.ts)"), ["docs/b.md: ../nope/x.ts (no file nope/x.ts)"])
  })

  it("the README's API table names every export of every public module", () => {
    const start = readme.indexOf("## API at a glance")
    const table = readme.slice(start, readme.indexOf("\n## ", start + 1))
    const modules: Record<string, object> = { ...Library, Grpc }
    const missing = Object.entries(modules).flatMap(([module, exports]) =>
      Object.keys(exports).map((name) => `${module}.${name}`).filter((name) => !table.includes(`\`${name}\``))
    )
    assert.isAbove(start, 0)
    assert.deepStrictEqual(missing, [])
  })

  it("the README starts with the two commands of a fresh machine", () => {
    const first = /```sh\n([\s\S]*?)```/.exec(readme)![1]!
    assert.match(first, /^npm ci && npm start\s/m)
    assert.match(first, /^npm ci && npm test\s/m)
  })
})
