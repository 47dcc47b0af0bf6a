/**
 * Temporary directories that are removed when the test file ends.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"

const made: Array<string> = []
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
})

export const tempDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), `effect-graceful-${prefix}-`))
  made.push(dir)
  return dir
}
