/**
 * The `@example` blocks of a module's JSDoc: the code of each ```ts block
 * under an `@example` tag, with the line it starts on.
 */
import { readFileSync } from "node:fs"

export const examples = (file: string): ReadonlyArray<{ readonly line: number; readonly code: string }> => {
  const text = readFileSync(file, "utf8")
  const found: Array<{ line: number; code: string }> = []
  for (const match of text.matchAll(/@example\s*\n\s*\* ```ts\n([\s\S]*?)\n\s*\* ```/g)) {
    const code = match[1]!.split("\n").map((line) => line.replace(/^\s*\* ?/, "")).join("\n")
    found.push({ line: text.slice(0, match.index).split("\n").length, code })
  }
  return found
}
