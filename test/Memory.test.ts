/**
 * Reading the cgroup: where the process's cgroup is (v2, v1, hybrid, a
 * namespaced container), the working set net of the inactive file cache,
 * the lowest limit up the tree, PSI — on folders laid out as the kernel
 * does; and the settings (environment over code, refused values).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Option } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import * as cgroup from "../src/internal/hosts/cgroup.ts"
import { Memory } from "../src/index.ts"
import { tempDir } from "./support/temp.ts"

const MIB = 1024 * 1024

const files = (dir: string, entries: Record<string, string>) => {
  mkdirSync(dir, { recursive: true })
  for (const [name, text] of Object.entries(entries)) writeFileSync(join(dir, name), text)
}

const mountinfo = (root: string) =>
  [
    `25 30 0:22 / ${root}/unified rw,nosuid - cgroup2 cgroup2 rw`,
    `26 30 0:23 / ${root}/memory rw,nosuid - cgroup cgroup rw,memory`,
    `27 30 0:24 / ${root}/cpu rw,nosuid - cgroup cgroup rw,cpu`
  ].join("\n")

describe("locating the cgroup", () => {
  it("hybrid (v2 mounted without the memory controller): v1's memory hierarchy, at the path /proc/self/cgroup names", () => {
    const root = tempDir("mounts")
    files(join(root, "unified"), { "cgroup.procs": "" })
    files(join(root, "memory/app/web"), { "memory.usage_in_bytes": "1", "memory.limit_in_bytes": "9223372036854771712" })
    const found = cgroup.locate(mountinfo(root), "4:memory:/app/web\n1:cpu:/\n0::/")
    assert.deepStrictEqual(found, { version: "v1", dir: join(root, "memory/app/web"), top: join(root, "memory") })
  })

  it("v2 with the memory controller wins; a namespaced container (mount root = its cgroup) maps to the mount point", () => {
    const root = tempDir("mounts")
    files(join(root, "unified/app"), { "memory.max": "max", "memory.current": "1" })
    assert.deepStrictEqual(cgroup.locate(mountinfo(root), "4:memory:/app\n0::/app"), {
      version: "v2",
      dir: join(root, "unified/app"),
      top: join(root, "unified")
    })
    const container = tempDir("mounts")
    files(container, { "memory.max": "1000", "memory.current": "1" })
    const info = `40 30 0:22 /kubepods/pod1/c1 ${container} rw - cgroup2 cgroup2 rw`
    assert.deepStrictEqual(cgroup.locate(info, "0::/kubepods/pod1/c1"), { version: "v2", dir: container, top: container })
    assert.isUndefined(cgroup.locate("", ""))
  })

  it("a working set net of the inactive file cache; the lowest limit of the cgroup and its ancestors; PSI some avg10", () => {
    const top = tempDir("v2")
    files(top, { "memory.max": String(300 * MIB) })
    files(join(top, "app"), { "memory.max": String(500 * MIB) })
    files(join(top, "app/web"), {
      "memory.max": "max",
      "memory.current": String(250 * MIB),
      "memory.stat": `anon 1\ninactive_file ${50 * MIB}\nactive_file 7\n`,
      "memory.pressure": "some avg10=12.50 avg60=1.00 avg300=0.00 total=9\nfull avg10=3.00 avg60=0.00 avg300=0.00 total=1\n"
    })
    assert.deepStrictEqual(cgroup.sample({ version: "v2", dir: join(top, "app/web"), top }), { usage: 200 * MIB, limit: 300 * MIB, stall: 12.5 })
    const v1 = tempDir("v1")
    files(v1, {
      "memory.usage_in_bytes": String(100 * MIB),
      "memory.limit_in_bytes": "9223372036854771712",
      "memory.stat": `cache 5\ninactive_file 1\ntotal_inactive_file ${10 * MIB}\n`
    })
    assert.deepStrictEqual(cgroup.sample(cgroup.at(v1)!), { usage: 90 * MIB, limit: undefined, stall: undefined })
  })
})

const settings = (env: Record<string, string>, options: Memory.Options = {}) =>
  Memory.settings(options).pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })))

describe("Memory.settings", () => {
  it.effect("off without a high water; the environment over code; the defaults", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isNone(yield* settings({})))
      const fromCode = yield* settings({}, { highWater: 0.85, sustain: "2s", pressure: false })
      assert.deepStrictEqual(Option.getOrThrow(fromCode), {
        highWater: 0.85,
        sustain: Duration.seconds(2),
        interval: Duration.seconds(1),
        pressure: undefined,
        cgroup: undefined
      })
      const fromEnv = Option.getOrThrow(yield* settings({ MEMORY_HIGH_WATER: "90%", MEMORY_SUSTAIN: "10s", MEMORY_PRESSURE: "35%" }, { highWater: "50%" }))
      assert.deepStrictEqual([fromEnv.highWater, Duration.toMillis(fromEnv.sustain), fromEnv.pressure], [0.9, 10_000, 0.35])
    }))

  it.effect("refuses a share that is not one, naming the variable or the option", () =>
    Effect.gen(function*() {
      for (const [env, options, variable] of [
        [{ MEMORY_HIGH_WATER: "150%" }, {}, "MEMORY_HIGH_WATER"],
        [{ MEMORY_HIGH_WATER: "0" }, {}, "MEMORY_HIGH_WATER"],
        [{}, { highWater: "lots" as Memory.Share }, "highWater option"],
        [{ MEMORY_HIGH_WATER: "90%", MEMORY_PRESSURE: "2" }, {}, "MEMORY_PRESSURE"],
        [{ MEMORY_HIGH_WATER: "90%", MEMORY_INTERVAL: "0" }, {}, "MEMORY_INTERVAL"]
      ] as const) {
        const exit = yield* Effect.exit(settings(env, options))
        assert.isTrue(Exit.isFailure(exit), JSON.stringify(env))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), variable)
      }
    }))
})
