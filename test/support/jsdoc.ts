/**
 * The `@example` blocks of the public modules' JSDoc: the code of each ```ts
 * block under an `@example` tag, and a way to write each to a module of its
 * own (so that the names of one do not clash with another's).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"

export const examples = (file: string): ReadonlyArray<{ readonly line: number; readonly code: string }> => {
  const text = readFileSync(file, "utf8")
  const found: Array<{ line: number; code: string }> = []
  for (const match of text.matchAll(/@example\s*\n\s*\* ```ts\n([\s\S]*?)\n\s*\* ```/g)) {
    const code = match[1]!.split("\n").map((line) => line.replace(/^\s*\* ?/, "")).join("\n")
    found.push({ line: text.slice(0, match.index).split("\n").length, code })
  }
  return found
}

/**
 * Writes every example of the modules in `src` to `out` (emptied first), as
 * `<Module>.line<N>.ts`; returns their names and code.
 */
export const writeExamples = (src: string, out: string): ReadonlyArray<{ readonly name: string; readonly code: string }> => {
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  return readdirSync(src).filter((name) => name.endsWith(".ts")).flatMap((module) =>
    examples(join(src, module)).map(({ code, line }) => {
      const name = `${module.replace(/\.ts$/, "")}.line${line}.ts`
      writeFileSync(join(out, name), `${code}\nexport {}\n`)
      return { name, code }
    })
  )
}
