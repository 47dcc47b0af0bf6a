/**
 * examples/pm2/ecosystem.config.cjs: cluster mode, PM2 waits for the 'ready'
 * that Main.runMain sends, its SIGKILL comes after our own shutdown deadline,
 * and the drain and close timeouts its comment gives are the ones the library
 * derives from the values it sets. No PM2 process: the file as PM2 loads it.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { Options } from "../src/index.ts"

const file = new URL("../examples/pm2/ecosystem.config.cjs", import.meta.url)
const source = readFileSync(file, "utf8")

interface App {
  readonly name: string
  readonly cwd: string
  readonly script: string
  readonly exec_mode: string
  readonly instances: number
  readonly wait_ready: boolean
  readonly listen_timeout: number
  readonly kill_timeout: number
  readonly env: Readonly<Record<string, string>>
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

/** The one app of the file, its fields checked for type as PM2 reads them. */
const loadApp = (): App => {
  const loaded: unknown = createRequire(import.meta.url)(file.pathname)
  if (!isRecord(loaded) || !Array.isArray(loaded["apps"]) || loaded["apps"].length !== 1) {
    throw new Error("expected { apps: [one app] }")
  }
  const app: unknown = loaded["apps"][0]
  if (!isRecord(app) || !isRecord(app["env"])) throw new Error("expected an app with an env")
  const string = (key: string) => {
    const value = app[key]
    if (typeof value !== "string") throw new Error(`${key}: expected a string, got ${JSON.stringify(value)}`)
    return value
  }
  const number = (key: string) => {
    const value = app[key]
    if (typeof value !== "number") throw new Error(`${key}: expected a number, got ${JSON.stringify(value)}`)
    return value
  }
  const env = Object.fromEntries(Object.entries(app["env"]).map(([name, value]) => [name, String(value)]))
  return {
    name: string("name"),
    cwd: string("cwd"),
    script: string("script"),
    exec_mode: string("exec_mode"),
    instances: number("instances"),
    wait_ready: app["wait_ready"] === true,
    listen_timeout: number("listen_timeout"),
    kill_timeout: number("kill_timeout"),
    env
  }
}

const commented = (name: string) => Number(new RegExp(`\\*\\s+${name}\\s+([\\d.]+)s`).exec(source)![1])

/** PM2 7's defaults (node_modules/pm2/constants.js): KILL_TIMEOUT and GRACEFUL_LISTEN_TIMEOUT. */
const PM2_DEFAULT_KILL_TIMEOUT_MS = 1_600
const PM2_DEFAULT_LISTEN_TIMEOUT_MS = 3_000
/** At least this between our shutdown deadline and PM2's SIGKILL: the report and the exit. */
const MARGIN_MS = 1_000

describe("the PM2 ecosystem file", () => {
  const app = loadApp()

  it("runs the example service in cluster mode, 2 instances, on the port-sharing primary (no REUSE_PORT)", () => {
    assert.deepStrictEqual([app.exec_mode, app.instances], ["cluster", 2])
    assert.strictEqual(readFileSync(join(app.cwd, app.script), "utf8"), readFileSync(new URL("../examples/main.ts", import.meta.url), "utf8"))
    assert.notProperty(app.env, "REUSE_PORT")
  })

  it.effect("waits for 'ready'; its SIGKILL comes after our shutdown deadline; derived timeouts as its comment says", () =>
    Effect.gen(function*() {
      const options = yield* Options.load().pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: app.env }))
      )
      const millis = Duration.toMillis
      assert.deepStrictEqual([options.origins.drainDelay, options.origins.shutdownTimeout], ["environment", "environment"])
      assert.deepStrictEqual([options.origins.drainTimeout, options.origins.closeTimeout], ["derived", "derived"])
      assert.strictEqual(millis(options.drainTimeout) / 1000, commented("drain timeout"))
      assert.strictEqual(millis(options.closeTimeout) / 1000, commented("close timeout"))
      // Keep-alive clients get `Connection: close` through the delay, before
      // the idle connections are closed at its end (with 0, a reload reset some).
      assert.isAbove(millis(options.drainDelay), 0)
      assert.strictEqual(options.logFormat, "json")
      // PM2 stops a worker with SIGINT: it must fire the quit event.
      assert.include(options.signals, "SIGINT")

      assert.isTrue(app.wait_ready, "PM2 waits for Main.runMain's 'ready'")
      assert.isAtLeast(app.kill_timeout, millis(options.shutdownTimeout) + MARGIN_MS, "PM2's SIGKILL after our own deadline")
      assert.isAbove(app.kill_timeout, PM2_DEFAULT_KILL_TIMEOUT_MS)
      // Long enough for a start (about a second here), and not the one thing
      // that paces a reload: 'ready' ends the wait long before.
      assert.isAtLeast(app.listen_timeout, PM2_DEFAULT_LISTEN_TIMEOUT_MS)
      assert.isAtMost(app.listen_timeout, app.kill_timeout)
    }))
})
