/**
 * examples/systemd/: the unit's stop timeout and watchdog agree with the
 * options its environment sets, the drain and close timeouts its comment
 * gives are the ones the library derives, and the socket unit names the
 * server that takes its socket. No systemd: the files as systemd reads them.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option } from "effect"
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Memory, Options, Systemd } from "../src/index.ts"

const read = (name: string) => readFileSync(new URL(`../examples/systemd/${name}`, import.meta.url), "utf8")
const service = read("effect-graceful-example.service")
const socket = read("effect-graceful-example.socket")

/** The `Key=value` lines of a unit, comments aside; a key given twice keeps every value. */
const directives = (unit: string): ReadonlyArray<readonly [string, string]> =>
  unit.split("\n").filter((line) => /^\w+=/.test(line)).map((line) => {
    const at = line.indexOf("=")
    return [line.slice(0, at), line.slice(at + 1)] as const
  })
const one = (unit: string, key: string): string => {
  const values = directives(unit).filter(([k]) => k === key).map(([, v]) => v)
  assert.lengthOf(values, 1, `${key} once`)
  return values[0]!
}
const env = Object.fromEntries(directives(service).filter(([k]) => k === "Environment").map(([, v]) => {
  const at = v.indexOf("=")
  return [v.slice(0, at), v.slice(at + 1)]
}))
const commented = (name: string) => Number(new RegExp(`#\\s+${name}\\s+([\\d.]+)s`).exec(service)![1])

// The longest the example's event loop is busy on purpose: the job queue's SQLite busy timeout
// (a statement waits that long for another process's lock, then is retried on a schedule).
const jobQueue = readFileSync(new URL("../src/JobQueue.ts", import.meta.url), "utf8")
const SQLITE_BUSY_MS = Number(/durationOr\(options\.busyTimeout, Duration\.millis\((\d+)\)/.exec(jobQueue)?.[1])

describe("the systemd units", () => {
  it.effect("stop timeout = shutdown timeout + Systemd.MARGIN; derived timeouts as the comment says; notify with the watchdog over the longest busy loop", () =>
    Effect.gen(function*() {
      const options = yield* Options.load().pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))
      )
      const seconds = (duration: Duration.Duration) => Duration.toMillis(duration) / 1000
      assert.deepStrictEqual([options.origins.drainDelay, options.origins.shutdownTimeout], ["environment", "environment"])
      assert.deepStrictEqual([options.origins.drainTimeout, options.origins.closeTimeout], ["derived", "derived"])
      assert.strictEqual(seconds(options.drainTimeout), commented("drain timeout"))
      assert.strictEqual(seconds(options.closeTimeout), commented("close timeout"))
      assert.include(options.signals, one(service, "KillSignal"))

      assert.strictEqual(one(service, "Type"), "notify")
      const stopTimeout = Number(one(service, "TimeoutStopSec"))
      assert.strictEqual(stopTimeout, seconds(options.shutdownTimeout) + seconds(Systemd.MARGIN), "systemd's SIGKILL after our deadline and the report")
      assert.strictEqual(one(service, "KillMode"), "mixed", "SIGTERM to node alone: the notify helper outlives it")
      assert.strictEqual(one(service, "NotifyAccess"), "all", "the helper and systemd-notify send for the main process")
      const watchdog = Number(one(service, "WatchdogSec"))
      // A ping comes every half; one delayed by the longest busy loop still arrives in time.
      assert.isFalse(Number.isNaN(SQLITE_BUSY_MS), "the job queue's busy timeout was found")
      assert.isBelow(watchdog / 2 + SQLITE_BUSY_MS / 1000, watchdog)
      assert.isAtMost(Number(one(service, "TimeoutStartSec")), stopTimeout + 5)
      assert.match(one(service, "ExecStart"), /^\/usr\/bin\/node examples\/main\.ts$/, "node itself is the main process")
      // Memory pressure needs a limit to measure against, and exits 75 for a restart.
      const memory = Option.getOrThrow(yield* Memory.settings().pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))
      ))
      assert.isBelow(memory.highWater, 1)
      assert.match(one(service, "MemoryMax"), /^\d+[KMG]$/)
      assert.strictEqual(one(service, "Restart"), "on-failure")
      assert.include(service, `# ${Memory.EXIT_CODE}: stopped for memory pressure`)
    }))

  it("the socket unit holds the API's port and names the server that takes it", () => {
    const api = readFileSync(new URL("../examples/service/api.ts", import.meta.url), "utf8")
    const name = one(socket, "FileDescriptorName")
    assert.include(api, `name: "${name}"`)
    assert.strictEqual(one(socket, "Service"), "effect-graceful-example.service")
    assert.strictEqual(one(socket, "ListenStream"), "8080")
    assert.match(one(service, "Requires"), /effect-graceful-example\.socket/)
    assert.notProperty(env, "PORT", "the API's port comes from the socket")
  })
})

describe("systemd-analyze verify", () => {
  it("reads both units without an unknown key or a value it cannot parse", () => {
    const dir = fileURLToPath(new URL("../examples/systemd/", import.meta.url))
    const result = spawnSync("systemd-analyze", ["verify", "--man=no", "effect-graceful-example.service", "effect-graceful-example.socket"], {
      cwd: dir,
      encoding: "utf8"
    })
    assert.isNull(result.error ?? null, "systemd-analyze (package systemd) runs")
    // What is not about this machine (the node binary, the working directory) is about the files.
    const complaints = result.stderr.split("\n").filter((line) => line.trim() !== "" && !/\/usr\/bin\/node|\/srv\/effect-graceful|\/var\/lib/.test(line))
    assert.deepStrictEqual(complaints, [])
  })
})
