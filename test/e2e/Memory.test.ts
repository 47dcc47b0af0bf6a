/**
 * Memory pressure with real processes: on a real cgroup (v1's memory
 * controller, writable on these machines) a service that leaks toward its
 * limit fires the quit event, fails readiness, finishes its requests in
 * flight and exits 75 with the reason in its report — before any OOM kill;
 * on a fake cgroup v2 folder, the working set's share (sustained, net of the
 * inactive file cache) and PSI each fire it, and a short spike does not.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { get } from "../support/http.ts"
import { tempDir } from "../support/temp.ts"
import { type Child, fixture, start } from "./harness.ts"

const children: Array<Child> = []
const cgroups: Array<string> = []
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.process.kill("SIGKILL")
    await child.exited().catch(() => undefined)
  }
  for (const dir of cgroups.splice(0)) if (existsSync(dir)) rmdirSync(dir)
})

const MIB = 1024 * 1024
const EXIT_CODE = 75

/** This process's cgroup in v1's memory hierarchy, as /proc/self/cgroup names it. */
const ownV1MemoryCgroup = (): string => {
  const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => l.split(":")[1]?.split(",").includes("memory"))
  if (line === undefined) throw new Error("no cgroup v1 memory controller in /proc/self/cgroup: " + readFileSync("/proc/self/cgroup", "utf8"))
  return join("/sys/fs/cgroup/memory", line.split(":").slice(2).join(":"))
}

const portOf = (child: Child) => Number(/LISTENING port=(\d+)/.exec(child.output())![1])

/** A cgroup of its own under this process's, with a 256 MiB limit, and the fixture started inside it. */
const inRealCgroup = (env: Record<string, string>) => {
  const dir = join(ownV1MemoryCgroup(), `effect-graceful-test-${process.pid}-${Date.now()}`)
  mkdirSync(dir)
  cgroups.push(dir)
  writeFileSync(join(dir, "memory.limit_in_bytes"), String(256 * MIB))
  // The child moves itself into the cgroup before Node starts: all it allocates counts.
  const child = start("-c", env, {
    executable: "/bin/sh",
    args: [`echo $$ > ${join(dir, "cgroup.procs")} && exec "$0" "$1"`, process.execPath, fixture("memory.ts")]
  })
  children.push(child)
  return { dir, child }
}

describe("memory pressure on a real cgroup (v1)", () => {
  it("without it (the control): the same leak is ended by the OOM killer — SIGKILL, no report, the request in flight lost", async () => {
    const { child, dir } = inRealCgroup({})
    await child.waitFor(/READY/)
    const port = portOf(child)
    const inFlight = get(port, "/slow?ms=10000")
    await get(port, "/grow")
    const { code } = await child.exited(30_000)
    assert.isNull(code)
    assert.strictEqual(child.process.signalCode, "SIGKILL")
    assert.notMatch(child.output(), /shutdown report/)
    assert.isDefined((await inFlight).error)
    assert.match(readFileSync(join(dir, "memory.oom_control"), "utf8"), /^oom_kill [1-9]\d*$/m)
  })

  it("a leak toward the limit: quit event, readiness 503, the request in flight finishes, exit 75 with the reason, no OOM kill", async () => {
    const { child, dir } = inRealCgroup({
      MEMORY_HIGH_WATER: "60%",
      MEMORY_SUSTAIN: "300ms",
      MEMORY_INTERVAL: "100ms",
      DRAIN_DELAY: "1s",
      SHUTDOWN_TIMEOUT: "10s"
    })
    await child.waitFor(/READY/)
    assert.include(child.output(), `memory: watching cgroup v1 ${dir}, limit 256 MiB: quitting at 60% for 300ms`)
    const port = portOf(child)
    const inFlight = get(port, "/slow?ms=2500")
    assert.strictEqual((await get(port, "/grow")).body, "growing")
    await child.waitFor(/quit event \(memory pressure: working set \d+ MiB is \d+% of the 256 MiB limit/)
    // Readiness fails first, while the listener still takes connections (the drain delay).
    const readiness = await get(port, "/readyz")
    assert.strictEqual(readiness.status, 503)
    const { code } = await child.exited(30_000)
    assert.strictEqual((await inFlight).body, "slow done", "the request in flight finished")
    assert.strictEqual(code, EXIT_CODE, child.output())
    assert.match(child.output(), /shutdown report: memory pressure: working set \d+ MiB is \d+% of the 256 MiB limit, at or above 60% for \d+ms, graceful, exit 75/)
    const grown = Number(/STOPPED GROWING at (\d+) MiB/.exec(child.output())![1])
    assert.isAbove(grown, 0)
    const oom = readFileSync(join(dir, "memory.oom_control"), "utf8")
    assert.match(oom, /^oom_kill 0$/m, "the OOM killer never ran")
    assert.isAbove(Number(readFileSync(join(dir, "memory.max_usage_in_bytes"), "utf8")), 0.6 * 256 * MIB, "the cgroup did reach the high water")
  })
})

/** A cgroup v2 folder of the test's own: the files the watcher reads. */
const fakeV2 = (current: number, options: { readonly inactiveFile?: number; readonly avg10?: number } = {}) => {
  const dir = tempDir("cgroup")
  const write = (currentBytes: number, inactive = options.inactiveFile ?? 0, avg10 = options.avg10 ?? 0) => {
    writeFileSync(join(dir, "memory.max"), String(200 * MIB))
    writeFileSync(join(dir, "memory.stat"), `anon 1000\nfile 2000\ninactive_file ${inactive}\nactive_file 0\n`)
    writeFileSync(
      join(dir, "memory.pressure"),
      `some avg10=${avg10.toFixed(2)} avg60=0.00 avg300=0.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n`
    )
    writeFileSync(join(dir, "memory.current"), String(currentBytes))
  }
  write(current)
  return { dir, write }
}

const watched = (dir: string, env: Record<string, string> = {}) => {
  const child = start(fixture("memory.ts"), {
    MEMORY_CGROUP: dir,
    MEMORY_HIGH_WATER: "90%",
    MEMORY_SUSTAIN: "1s",
    MEMORY_INTERVAL: "100ms",
    SHUTDOWN_TIMEOUT: "5s",
    ...env
  })
  children.push(child)
  return child
}

describe("memory pressure on a fake cgroup v2 folder", () => {
  it("a spike shorter than MEMORY_SUSTAIN does nothing; the inactive file cache does not count; a sustained one fires, exit 75", async () => {
    const cgroup = fakeV2(100 * MIB)
    const child = watched(cgroup.dir)
    await child.waitFor(/READY/)
    assert.include(child.output(), `memory: watching cgroup v2 ${cgroup.dir}, limit 200 MiB: quitting at 90% for 1s, or at PSI some avg10 20%`)
    const port = portOf(child)

    cgroup.write(190 * MIB)
    await child.waitFor(/memory: working set 190 MiB is 95% of the 200 MiB limit; quitting if it stays at or above 90% for 1s/)
    cgroup.write(100 * MIB)
    await child.waitFor(/memory: working set back below 90% of the limit/)
    assert.strictEqual((await get(port, "/readyz")).status, 200, "still serving: the spike did not fire the quit event")

    // 195 MiB used, 50 MiB of it inactive file cache: a working set of 145 MiB, 72%.
    cgroup.write(195 * MIB, 50 * MIB)
    const spikes = () => child.output().split("memory: working set").length
    const before = spikes()
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.strictEqual(spikes(), before, "no warning for a working set under the high water")

    cgroup.write(195 * MIB)
    const { code } = await child.exited()
    assert.strictEqual(code, EXIT_CODE, child.output())
    assert.match(child.output(), /shutdown report: memory pressure: working set 195 MiB is 98% of the 200 MiB limit, at or above 90% for 1s( \d+ms)?, graceful, exit 75/)
  })

  it("PSI: stalled on memory at or above MEMORY_PRESSURE fires at once, whatever the share", async () => {
    const cgroup = fakeV2(20 * MIB)
    const child = watched(cgroup.dir, { MEMORY_PRESSURE: "30%" })
    await child.waitFor(/READY/)
    cgroup.write(20 * MIB, 0, 29.5)
    await new Promise((resolve) => setTimeout(resolve, 400))
    assert.strictEqual((await get(portOf(child), "/readyz")).status, 200)
    cgroup.write(20 * MIB, 0, 42.25)
    const { code } = await child.exited()
    assert.strictEqual(code, EXIT_CODE, child.output())
    assert.match(child.output(), /shutdown report: memory pressure: stalled on memory 42\.25% of the last 10 s \(PSI some avg10\), at or above 30%, graceful, exit 75/)
  })

  it("a setting that cannot be used is refused at start (exit 1); a second reason (SIGTERM first) keeps exit 0", async () => {
    const bad = start(fixture("memory.ts"), { MEMORY_HIGH_WATER: "150%" })
    children.push(bad)
    assert.strictEqual((await bad.exited()).code, 1)
    assert.match(bad.output(), /invalid configuration: MEMORY_HIGH_WATER="150%": expected a share of the limit such as 90% or 0\.9/)

    const cgroup = fakeV2(20 * MIB)
    const child = watched(cgroup.dir)
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 0)
    assert.match(child.output(), /shutdown report: SIGTERM, graceful, exit 0/)
  })
})
