/**
 * How close the process's cgroup is to its memory limit, read from the
 * cgroup filesystem: v2 (`memory.current`, `memory.max`, `memory.stat`,
 * `memory.pressure`) or v1 (`memory.usage_in_bytes`, `memory.limit_in_bytes`,
 * `memory.stat`). Usage is the working set — what the kernel cannot simply
 * drop: usage less the inactive file cache — as the kubelet counts it for
 * evictions; the limit is the lowest of the cgroup's and its ancestors'.
 *
 * @internal
 */
import { existsSync, readFileSync } from "node:fs"
import { dirname, join, relative } from "node:path"

/** @internal */
export interface Cgroup {
  readonly version: "v1" | "v2"
  /** The process's cgroup folder. */
  readonly dir: string
  /** Where to stop looking up for a lower limit (the mount point, or `dir` for a folder given). */
  readonly top: string
}

/** @internal */
export interface Sample {
  /** Working set, bytes. */
  readonly usage: number
  /** The effective limit, bytes; `undefined`: none. */
  readonly limit: number | undefined
  /** PSI `some avg10` (percent of the last 10 s stalled on memory), v2 only. */
  readonly stall: number | undefined
}

const readText = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8")
  } catch {
    return undefined
  }
}

// v1 says "no limit" with a huge number (PAGE_COUNTER_MAX pages); v2 with "max".
const UNLIMITED = 2 ** 60

const bytes = (text: string | undefined): number | undefined => {
  const value = text?.trim()
  if (value === undefined || value === "" || value === "max") return undefined
  const n = Number(value)
  return Number.isFinite(n) && n < UNLIMITED ? n : undefined
}

/** A `key value` line of `memory.stat`. @internal */
export const stat = (text: string | undefined, key: string): number => {
  const match = text === undefined ? null : new RegExp(`^${key} (\\d+)$`, "m").exec(text)
  return match === null ? 0 : Number(match[1])
}

/** `some avg10=…` of a PSI file. @internal */
export const someAvg10 = (text: string | undefined): number | undefined => {
  const match = text === undefined ? null : /^some avg10=(\d+(?:\.\d+)?)/m.exec(text)
  return match === null ? undefined : Number(match[1])
}

/** A folder given (tests, a relocated mount): v2 if it has memory.current, else v1 if it has memory.usage_in_bytes. @internal */
export const at = (dir: string): Cgroup | undefined =>
  existsSync(join(dir, "memory.current"))
    ? { version: "v2", dir, top: dir }
    : existsSync(join(dir, "memory.usage_in_bytes"))
    ? { version: "v1", dir, top: dir }
    : undefined

interface Mount {
  readonly root: string
  readonly point: string
  readonly type: string
  readonly options: ReadonlyArray<string>
}

const mounts = (mountinfo: string): ReadonlyArray<Mount> =>
  mountinfo.split("\n").flatMap((line) => {
    const [left, right] = line.split(" - ")
    if (left === undefined || right === undefined) return []
    const fields = left.split(" ")
    const [type, , options] = right.split(" ")
    if (fields[3] === undefined || fields[4] === undefined || type === undefined) return []
    return [{ root: fields[3], point: fields[4].replace(/\\040/g, " "), type, options: (options ?? "").split(",") }]
  })

const under = (mount: Mount, path: string) => {
  const inside = relative(mount.root, path)
  return join(mount.point, inside.startsWith("..") ? path : inside)
}

/**
 * The cgroup of this process from `/proc/self/mountinfo` and
 * `/proc/self/cgroup`: v2 when its folder has a memory controller
 * (`memory.max`), else v1's memory hierarchy. `undefined` when neither.
 *
 * @internal
 */
export const locate = (
  mountinfo = readText("/proc/self/mountinfo") ?? "",
  membership = readText("/proc/self/cgroup") ?? ""
): Cgroup | undefined => {
  const lines = membership.split("\n").map((line) => line.split(":")).filter((parts) => parts.length >= 3)
  const all = mounts(mountinfo)
  const unified = lines.find((parts) => parts[0] === "0" && parts[1] === "")
  const v2 = all.find((mount) => mount.type === "cgroup2")
  if (unified !== undefined && v2 !== undefined) {
    const dir = under(v2, parts(unified))
    if (existsSync(join(dir, "memory.max")) || existsSync(join(dir, "memory.current"))) return { version: "v2", dir, top: v2.point }
  }
  const memory = lines.find((line) => line[1]!.split(",").includes("memory"))
  const v1 = all.find((mount) => mount.type === "cgroup" && mount.options.includes("memory"))
  if (memory !== undefined && v1 !== undefined) {
    const dir = under(v1, parts(memory))
    if (existsSync(join(dir, "memory.usage_in_bytes"))) return { version: "v1", dir, top: v1.point }
  }
  return undefined
}

const parts = (line: ReadonlyArray<string>) => line.slice(2).join(":")

/** The lowest limit of `dir` and its ancestors up to `top`. */
const limit = (cgroup: Cgroup): number | undefined => {
  const file = cgroup.version === "v2" ? "memory.max" : "memory.limit_in_bytes"
  let lowest: number | undefined
  for (let dir = cgroup.dir;; dir = dirname(dir)) {
    const value = bytes(readText(join(dir, file)))
    if (value !== undefined && (lowest === undefined || value < lowest)) lowest = value
    if (dir === cgroup.top || dirname(dir) === dir || !dir.startsWith(cgroup.top)) break
  }
  return lowest
}

/** One reading. @internal */
export const sample = (cgroup: Cgroup): Sample => {
  const statText = readText(join(cgroup.dir, "memory.stat"))
  if (cgroup.version === "v2") {
    const current = bytes(readText(join(cgroup.dir, "memory.current"))) ?? 0
    return {
      usage: Math.max(0, current - stat(statText, "inactive_file")),
      limit: limit(cgroup),
      stall: someAvg10(readText(join(cgroup.dir, "memory.pressure")))
    }
  }
  const usage = bytes(readText(join(cgroup.dir, "memory.usage_in_bytes"))) ?? 0
  return { usage: Math.max(0, usage - stat(statText, "total_inactive_file")), limit: limit(cgroup), stall: undefined }
}
