/**
 * The README's first command starts examples/main.ts. It logs the ports it
 * bound in one line; a real SIGTERM drains it (the request in flight
 * completes with `Connection: close`) and it exits 0 with the report. Bad
 * configuration stops it before anything listens.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { request } from "node:http"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { connect } from "../support/http.ts"
import { type Child, start } from "./harness.ts"
import { tempDir } from "../support/temp.ts"

const main = fileURLToPath(new URL("../../examples/main.ts", import.meta.url))
let child: Child | undefined
afterEach(() => child?.process.kill("SIGKILL"))

const get = (port: number, path: string) =>
  new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
    request({ host: "127.0.0.1", port, path }, (res) => {
      let body = ""
      res.on("data", (chunk) => body += chunk)
      res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }))
    }).on("error", reject).end()
  })

const env = () => ({ PORT: "0", WEB_PORT: "0", GRPC_PORT: "0", JOBS_DB: join(tempDir("example"), "jobs.db") })

describe("the example service", () => {
  it("logs its bound ports, drains a request in flight on SIGTERM, prints the report and exits 0", async () => {
    child = start(main, env())
    await child.waitFor(/example service listening: api=\d+ web=\d+ grpc=\d+/)
    const [, api, web] = /api=(\d+) web=(\d+)/.exec(child.output())!.map(Number)
    assert.deepStrictEqual(await get(web!, "/hello"), { status: 200, connection: "keep-alive", body: "hello from express\n" })
    const inFlight = get(api!, "/work?ms=500")
    await new Promise((resolve) => setTimeout(resolve, 100))
    child.signal("SIGTERM")
    assert.deepStrictEqual(await inFlight, { status: 200, connection: "close", body: "worked 500 ms\n" })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 0, output)
    for (const [name, kind] of [["api", "http"], ["web", "http"], ["grpc", "grpc"], ["jobs", "worker"], ["jobs db", "closer"]]) {
      assert.match(output, new RegExp(`\\n  ${name}\\s+${kind}\\s+done`), `${name} closed`)
    }
    assert.match(output, /api\s+http\s+done\s+\d+\s+1 → 0/)
  })

  it("DRAIN_DELAY=auto: after a real SIGTERM the listeners close once the prober has had 3 rounds of not-ready answers, logged and reported", async () => {
    child = start(main, { ...env(), DRAIN_DELAY: "auto 200ms..20s" })
    await child.waitFor(/example service listening/)
    const [, api] = /api=(\d+)/.exec(child.output())!.map(Number)
    const probe = () => get(api!, "/readyz")
    const listening = () => connect(api!)
    const pause = () => new Promise((resolve) => setTimeout(resolve, 100))
    // A prober on a cadence, as a balancer: every 100 ms.
    assert.strictEqual((await probe()).status, 200)
    await pause()
    assert.strictEqual((await probe()).status, 200)
    child.signal("SIGTERM")
    await child.waitFor(/quit event \(SIGTERM\): draining; listeners close once routing here has stopped, between 200ms and 20s/)
    const ended = /drain delay ended after .*, on evidence: its prober answered not ready in 3 rounds \(127\.0\.0\.1 \(every /
    const before: Array<string> = []
    for (let round = 1; round <= 2; round++) {
      await pause()
      assert.strictEqual((await probe()).status, 503)
      before.push(await listening())
    }
    assert.deepStrictEqual(before, ["connected", "connected"], "2 rounds of 3: still listening")
    assert.notMatch(child.output(), ended)
    // On the prober's cadence until the rule has its third round (on a loaded machine a round
    // may take more than one probe: a probe counts once half its longest gap has passed).
    let probes = 2
    while (!ended.test(child.output()) && probes < 200) {
      await pause()
      const answer = await probe().then((reply) => reply.status, (error: NodeJS.ErrnoException) => error.code)
      if (answer === "ECONNREFUSED") break // closed: its log line is on its way
      assert.strictEqual(answer, 503)
      probes++
    }
    await child.waitFor(ended)
    assert.isAtLeast(probes, 3)
    assert.strictEqual(await listening(), "ECONNREFUSED", child.output())
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    assert.match(child.output(), /shutdown report: SIGTERM, graceful, exit 0, \d+ ms; drain delay \d+ ms, ended on evidence: /)
  })

  it("HOST binds every port it opens, the health port too", async () => {
    child = start(main, { ...env(), HOST: "127.0.0.1", HEALTH_PORT: "0" })
    await child.waitFor(/example service listening: .*health=\d+/)
    const output = child.output()
    assert.match(output, /health listening on http:\/\/127\.0\.0\.1:\d+/, output)
    assert.match(output, /gRPC listening on 127\.0\.0\.1:\d+/, output)
  })

  it("answers bad parameters with 400 and a reason", async () => {
    child = start(main, env())
    await child.waitFor(/example service listening/)
    const [, api] = /api=(\d+)/.exec(child.output())!.map(Number)
    const response = await get(api!, "/work?ms=soon")
    assert.strictEqual(response.status, 400)
    assert.strictEqual(response.body, "bad parameter ms: expected an integer from 0 to 60000\n")
  })

  it.each([
    [{ GRPC_PORT: "70000" }, `GRPC_PORT="70000": expected a port number`],
    [{ PORT: "abc" }, `PORT="abc": expected a string representing a finite number`],
    [{ WORKERS: "-1" }, `WORKERS="-1": expected a value greater than 0`],
    [{ JOBS_LEASE: "soon" }, `JOBS_LEASE="soon": expected a duration such as 5s, 500ms, 2m or "5 seconds"`]
  ])("bad configuration %o: exit 1 naming the variable and its value, before anything listens", async (bad, message) => {
    child = start(main, { ...env(), ...bad })
    const { code } = await child.exited()
    const output = child.output()
    assert.strictEqual(code, 1, output)
    assert.include(output, `invalid configuration: ${message}\n`)
    assert.notInclude(output, "Error:", "no stack trace")
    assert.match(output, /shutdown report: failure: invalid configuration, failed, exit 1/)
    assert.notInclude(output, "listening")
  })
})
