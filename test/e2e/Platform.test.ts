/**
 * Each platform preset from its environment, with real signals: the service
 * recognises the platform, says so in one line at start, derives a shutdown
 * timeout that fits the platform's grace, handles the signal the platform
 * sends, and — with a request that never ends in flight, on the platforms
 * whose grace is short — writes its report and exits before the platform's
 * SIGKILL, which the test sends at the end of the grace as the platform would.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { get } from "../support/http.ts"
import { type Child, fixture, start } from "./harness.ts"

const children: Array<Child> = []
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill("SIGKILL")
})

// Every variable a platform is recognised by, blank: the test's own environment must not choose one.
const BLANK = {
  K_SERVICE: "",
  ECS_CONTAINER_METADATA_URI_V4: "",
  FLY_APP_NAME: "",
  DYNO: "",
  NOMAD_ALLOC_ID: "",
  KUBERNETES_SERVICE_HOST: "",
  PLATFORM: "",
  SHUTDOWN_TIMEOUT: "",
  SHUTDOWN_SIGNALS: ""
}

interface Case {
  readonly name: string
  readonly env: Record<string, string>
  readonly signal: NodeJS.Signals
  readonly graceSeconds: number
  /** A request that never ends is in flight at the signal: the drain deadline cuts it. */
  readonly hang: boolean
}

const CASES: ReadonlyArray<Case> = [
  { name: "Cloud Run", env: { K_SERVICE: "api" }, signal: "SIGTERM", graceSeconds: 10, hang: true },
  { name: "Amazon ECS", env: { ECS_CONTAINER_METADATA_URI_V4: "http://169.254.170.2/v4/x" }, signal: "SIGTERM", graceSeconds: 30, hang: false },
  { name: "Fly.io", env: { FLY_APP_NAME: "api" }, signal: "SIGINT", graceSeconds: 5, hang: true },
  { name: "Heroku", env: { DYNO: "web.1" }, signal: "SIGTERM", graceSeconds: 30, hang: false },
  { name: "Nomad", env: { NOMAD_ALLOC_ID: "5b2f" }, signal: "SIGINT", graceSeconds: 5, hang: true },
  { name: "Kubernetes", env: { KUBERNETES_SERVICE_HOST: "10.0.0.1" }, signal: "SIGTERM", graceSeconds: 30, hang: false }
]

const seconds = (text: string) => {
  const match = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(text.replace(/(\d)s (\d+)ms$/, (_, s, ms) => `${s}.${ms.padStart(3, "0")}s`))
  if (match === null) throw new Error(`not a duration: ${text}`)
  return match[2] === "ms" ? Number(match[1]) / 1000 : Number(match[1])
}

describe("platform presets", () => {
  it.each(CASES)("$name: recognised, its $signal handled, a shutdown timeout within its grace, the report before its SIGKILL", async (c) => {
    const child = start(fixture("platform.ts"), { ...BLANK, ...c.env })
    children.push(child)
    await child.waitFor(/READY/)
    const line = child.output().split("\n").find((l) => l.includes(`platform ${c.name} (`)) ?? ""
    assert.match(line, new RegExp(`it sends ${c.signal}, then SIGKILL ${c.graceSeconds}s later`))
    const derived = /SHUTDOWN_TIMEOUT ([\dms .]+?): that grace less/.exec(line)
    assert.isNotNull(derived, line)
    const shutdownSeconds = seconds(derived![1]!.trim())
    assert.isAtMost(shutdownSeconds, c.graceSeconds - 2, "at least 2 s of the grace left for the report and the exit")
    assert.isAbove(shutdownSeconds, 0)
    assert.notMatch(child.output(), /WARN/)

    const port = Number(/LISTENING port=(\d+)/.exec(child.output())![1])
    const hanging = c.hang ? get(port, "/hang") : undefined
    if (c.hang) await new Promise((resolve) => setTimeout(resolve, 200))
    child.signal(c.signal)
    // The platform's SIGKILL, at the end of its grace.
    const kill = setTimeout(() => child.process.kill("SIGKILL"), c.graceSeconds * 1000)
    const { code } = await child.exited(c.graceSeconds * 1000 + 5_000)
    clearTimeout(kill)
    assert.strictEqual(code, 0, "exited by itself, not by the SIGKILL")
    assert.match(child.output(), new RegExp(`shutdown report: ${c.signal}, graceful, exit 0`))
    if (hanging !== undefined) {
      assert.match(child.output(), /http +http +cut/)
      assert.isDefined((await hanging).error ?? (await hanging).status)
    }
  })

  it("PLATFORM=none turns the preset off; an explicit SHUTDOWN_TIMEOUT wins and is warned about when it cannot fit", async () => {
    const off = start(fixture("platform.ts"), { ...BLANK, FLY_APP_NAME: "api", PLATFORM: "none" })
    children.push(off)
    await off.waitFor(/READY/)
    assert.notMatch(off.output(), /platform /)
    off.signal("SIGTERM")
    assert.strictEqual((await off.exited()).code, 0)

    const explicit = start(fixture("platform.ts"), { ...BLANK, K_SERVICE: "api", SHUTDOWN_TIMEOUT: "30s" })
    children.push(explicit)
    await explicit.waitFor(/READY/)
    assert.match(explicit.output(), /platform Cloud Run \(K_SERVICE is set\): it sends SIGTERM, then SIGKILL 10s later; SHUTDOWN_TIMEOUT as set/)
    assert.match(explicit.output(), /WARN.*SHUTDOWN_TIMEOUT 30s does not fit Cloud Run's grace: SIGKILL comes 10s after SIGTERM, before the shutdown deadline; set SHUTDOWN_TIMEOUT to at most 8s/)
    assert.match(explicit.output(), /shutdown deadline in 30s|listening/)
    explicit.signal("SIGTERM")
    assert.strictEqual((await explicit.exited()).code, 0)

    const signals = start(fixture("platform.ts"), { ...BLANK, PLATFORM: "fly", SHUTDOWN_SIGNALS: "SIGTERM", PLATFORM_GRACE: "20s" })
    children.push(signals)
    await signals.waitFor(/READY/)
    assert.match(signals.output(), /platform Fly\.io \(PLATFORM=fly\): it sends SIGINT, then SIGKILL 20s later \(PLATFORM_GRACE\); SHUTDOWN_TIMEOUT 18s/)
    assert.match(signals.output(), /WARN.*SHUTDOWN_SIGNALS=SIGTERM leaves out SIGINT, which Fly\.io sends/)
    signals.signal("SIGTERM")
    assert.strictEqual((await signals.exited()).code, 0)
  })
})
