/**
 * An optional peer dependency whose published platform packages npm cannot
 * all resolve (node-unix-socket lists darwin and arm builds that were never
 * published, so a lockfile holding it fails `npm ci`): installed for the tests
 * into a folder of its own, once per machine, and found by a child process
 * through `NODE_PATH` (the library loads it with `require`).
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** The `node_modules` folder holding `spec` (such as `node-unix-socket@^0.2.7`), installed if missing. */
export const installOptional = (name: string, range: string): string => {
  const folder = join(tmpdir(), "effect-graceful-optional", `${name}@${range.replace(/[^\w.-]/g, "_")}`)
  const modules = join(folder, "node_modules")
  if (existsSync(join(modules, name, "package.json"))) return modules
  mkdirSync(folder, { recursive: true })
  execFileSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", folder, `${name}@${range}`], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, CI: "true" }
  })
  return modules
}
