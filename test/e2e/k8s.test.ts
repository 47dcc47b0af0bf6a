/**
 * examples/k8s/deployment.yaml, run: the example service with the manifest's
 * environment (its ports moved to free ones, a shorter drain delay), a request
 * in flight and a real SIGTERM. The liveness probe, sent where the manifest
 * points it, answers 200 through the whole drain — after the app's listener
 * has closed — until the process exits.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { request } from "node:http"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { tempDir } from "../support/temp.ts"
import { type Child, start } from "./harness.ts"

const main = fileURLToPath(new URL("../../examples/main.ts", import.meta.url))
const yaml = readFileSync(new URL("../../examples/k8s/deployment.yaml", import.meta.url), "utf8")

const env = Object.fromEntries([...yaml.matchAll(/- \{ name: (\w+), value: "?([^" }]+)"? \}/g)].map(([, name, value]) => [name!, value!]))
const ports = Object.fromEntries(
  [...yaml.matchAll(/- \{ name: (\w+), containerPort: (\d+) \}/g)].map(([, name, port]) => [name!, port!])
)
const probe = (kind: string) => {
  const match = new RegExp(`${kind}:\\s+httpGet: \\{ path: (\\S+), port: (\\w+) \\}`).exec(yaml)
  if (match === null) throw new Error(`no ${kind} in the manifest`)
  return { path: match[1]!, port: match[2]! }
}
// The example service's variables, and the name each bound port has in its first log line.
const LABELS: Record<string, string> = { PORT: "api", WEB_PORT: "web", GRPC_PORT: "grpc", HEALTH_PORT: "health" }

const get = (port: number, path: string) =>
  new Promise<number | string>((resolve) => {
    request({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
    }).on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message)).end()
  })

let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

describe("the Kubernetes manifest, run", () => {
  it("liveness, where the manifest points it, answers 200 through the whole drain until the exit", async () => {
    const liveness = probe("livenessProbe")
    const variable = Object.keys(env).find((name) => env[name] === ports[liveness.port])
    assert.isDefined(variable, `the variable that sets port ${liveness.port}`)
    const label = LABELS[variable!]!
    const free = Object.fromEntries(Object.keys(LABELS).filter((name) => name in env).map((name) => [name, "0"]))
    child = start(main, {
      ...env,
      ...free,
      HOST: "127.0.0.1",
      JOBS_DB: join(tempDir("k8s"), "jobs.db"),
      LOG_FORMAT: "text",
      DRAIN_DELAY: "300ms"
    })
    await child.waitFor(/example service listening: /)
    const bound = (name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(child!.output())![1])
    const livePort = bound(label)
    const api = bound("api")
    const inFlight = get(api, "/work?ms=1500")
    await new Promise((resolve) => setTimeout(resolve, 100))
    child.signal("SIGTERM")
    const exited = child.exited()
    let done = false
    void exited.then(() => done = true)
    // Each answer, and whether the app's listener had closed by then.
    const answers: Array<{ readonly answer: number | string; readonly appClosed: boolean }> = []
    let appClosed = false
    while (!done) {
      const answer = await get(livePort, liveness.path)
      answers.push({ answer, appClosed })
      if (!appClosed) appClosed = (await get(api, "/work?ms=0")) === "ECONNREFUSED" && !done
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    const { code } = await exited
    assert.strictEqual(await inFlight, 200)
    assert.strictEqual(code, 0, child.output())
    // The health server closes when the shutdown has ended, just before the
    // report and the exit: only the last probes may fail.
    const lastOk = answers.findLastIndex((a) => a.answer === 200)
    const failed = answers.filter((a, i) => a.answer !== 200 && i < lastOk)
    assert.deepStrictEqual(failed, [], "liveness answered 200 until the shutdown ended")
    assert.isAbove(answers.filter((a) => a.appClosed && a.answer === 200).length, 10, "…also after the app's listener closed")
  }, 60_000)
})
