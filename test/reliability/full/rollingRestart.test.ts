/**
 * A rolling restart behind HAProxy, standing in for a Kubernetes rolling
 * update (maxSurge 1, maxUnavailable 0; examples/k8s/deployment.yaml): two
 * instances of the example service behind HAProxy, which health-checks each on
 * `GET /readyz`; under steady HTTP (Effect API and Express) and gRPC load
 * through HAProxy — gRPC balanced per call (HTTP/2, as an ingress does) and
 * per connection (TCP, as kube-proxy does) — each instance in turn is replaced — a new instance starts
 * in a free slot, HAProxy sees it UP, then the old one gets SIGTERM — for
 * three rounds (six restarts).
 *
 * The promise: 0 failed requests at the client, over the whole run; each old
 * instance exits 0 before its shutdown deadline (its report says `graceful`),
 * HAProxy having marked it DOWN while its listeners still accepted (readiness
 * fails at once; the listeners close only after the drain delay). The times
 * are recorded, not asserted.
 *
 * Full suite only (`npm run test:reliability`, which installs HAProxy first):
 * without HAProxy this fails, it is not skipped.
 */
import { assert, describe, it } from "@effect/vitest"
import { setTimeout as sleep } from "node:timers/promises"
import { startLoad } from "../../../examples/demo/load.ts"
import { backends, type Check, makeSlots, type Slot, startHaproxy } from "../support/haproxy.ts"
import { lab, type Service } from "../support/lab.ts"
import { connect } from "../../support/http.ts"
import { outcomes, shutdownReport } from "../support/report.ts"
import { record, spread } from "../support/results.ts"

const { defer, service, tempDir } = lab()
const ROUNDS = 3
/** The manifest's readinessProbe (failureThreshold 1, successThreshold 1), its period scaled down from 2 s. */
const CHECK: Check = { interMs: 100, fall: 1, rise: 1 }
/** ≥ inter × fall, plus the time for a check to run and HAProxy to act on it. */
const DRAIN_DELAY_MS = 1_000
const SHUTDOWN_TIMEOUT_MS = 4_000
const LIMIT_MS = SHUTDOWN_TIMEOUT_MS + 100
const env = {
  DRAIN_DELAY: `${DRAIN_DELAY_MS}ms`,
  DRAIN_TIMEOUT: "2s",
  CLOSE_TIMEOUT: "500ms",
  SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`
}

interface Restart {
  readonly replaced: string
  readonly by: string
  /** From the replacement's start to HAProxy seeing it UP. */
  readonly upAfterMs: number
  /** From the SIGTERM to HAProxy marking the old instance DOWN. */
  readonly downAfterMs: number
  readonly elapsedMs: number
  readonly code: number | null
}

describe("rolling restart behind HAProxy", () => {
  it(`${ROUNDS} rounds of replacing each of two instances under HTTP and gRPC load: 0 failed requests`, async () => {
    const slots = await makeSlots(["s1", "s2", "s3"])
    const proxy = await startHaproxy(tempDir(), slots, CHECK, defer)
    const startIn = async (slot: Slot) => {
      const child = service({ ...env, PORT: String(slot.api), WEB_PORT: String(slot.web), GRPC_PORT: String(slot.grpc) })
      await child.listening()
      return child
    }
    const running = new Map<Slot, Service>()
    for (const slot of slots.slice(0, 2)) running.set(slot, await startIn(slot))
    await Promise.all([proxy.waitFor("s1", "UP"), proxy.waitFor("s2", "UP"), proxy.waitFor("s3", "DOWN")])

    const load = startLoad(proxy.frontends, { http: 40, grpc: 10, maxWorkMs: 200 })
    defer(() => load.stop())
    const tcpLoad = startLoad({ ...proxy.frontends, grpc: proxy.frontends.grpcTcp }, { http: 0, grpc: 10, maxWorkMs: 200 })
    defer(() => tcpLoad.stop())
    await sleep(1_000)
    const restarts: Array<Restart> = []
    for (let round = 0; round < ROUNDS; round++) {
      for (const old of [...running.keys()]) {
        const free = slots.find((slot) => !running.has(slot))!
        const startedAt = performance.now()
        running.set(free, await startIn(free))
        const upAt = await proxy.waitFor(free.name, "UP")
        const instance = running.get(old)!
        const signalAt = performance.now()
        const stopping = instance.stop()
        const downAt = await proxy.waitFor(old.name, "DOWN")
        // Observed after DOWN: connections to the old instance are still accepted, its listeners still open.
        const atDown = await Promise.all([connect(old.api), connect(old.web), connect(old.grpc)])
        const stopped = await stopping
        running.delete(old)
        const output = instance.output()
        assert.strictEqual(stopped.code, 0, output)
        const report = shutdownReport(output)
        // Not `deadline`: it ended before its shutdown deadline.
        assert.deepStrictEqual([report.ending, report.exitCode], ["graceful", 0], output)
        assert.deepStrictEqual(
          atDown,
          ["connected", "connected", "connected"],
          "HAProxy stopped routing to it before its listeners closed"
        )
        assert.deepStrictEqual(outcomes(report), [
          "api: done",
          "grpc: done",
          "jobs db: done",
          "jobs lease: done",
          "jobs: done",
          "web: done"
        ])
        restarts.push({
          replaced: old.name,
          by: free.name,
          upAfterMs: upAt - startedAt,
          downAfterMs: downAt - signalAt,
          elapsedMs: stopped.elapsedMs,
          code: stopped.code
        })
        await sleep(500)
      }
    }
    await Promise.all([load.stop(), tcpLoad.stop()])

    const samples = [...load.samples, ...tcpLoad.samples]
    const failed = samples.filter((sample) => sample.outcome !== "ok")
    assert.deepStrictEqual(failed, [], `${failed.length} of ${samples.length} requests failed`)
    const stats = await proxy.stats()
    const sessions = (backend: string, server: string) =>
      stats.find((row) => row.backend === backend && row.server === server)?.sessions ?? 0
    for (const slot of slots) {
      for (const name of ["api", "web", "grpc"]) assert.isAbove(sessions(name, slot.name), 0, `${name} traffic reached ${slot.name}`)
    }
    // One gRPC connection over TCP: it moved to another instance each time its instance was replaced.
    const tcpConnections = slots.reduce((n, slot) => n + sessions("grpc-tcp", slot.name), 0)
    assert.isAtLeast(tcpConnections, ROUNDS + 1)
    const kinds = (kind: "http" | "grpc") => samples.filter((sample) => sample.kind === kind).length
    record({
      family: "Rolling restart behind HAProxy",
      scenario: `2 instances, each replaced in turn, ${ROUNDS} rounds, under load through HAProxy`,
      trials: restarts.length,
      requests: samples.length,
      failures: failed.length,
      signalToExitMs: restarts.map((restart) => restart.elapsedMs),
      limitMs: LIMIT_MS,
      exitCodes: restarts.map((restart) => restart.code),
      notes: [
        `load: 40 keep-alive HTTP clients (Effect API and Express), 10 gRPC clients balanced per call (HTTP/2) and ` +
        `10 per connection (TCP) through HAProxy 2.6, requests of 0–200 ms: ${kinds("http")} HTTP + ${
          kinds("grpc")
        } gRPC, ${failed.length} failed`,
        `HAProxy: check GET /readyz every ${CHECK.interMs} ms, fall ${CHECK.fall}, rise ${CHECK.rise}; ` +
        `instances: DRAIN_DELAY ${env.DRAIN_DELAY}, DRAIN_TIMEOUT ${env.DRAIN_TIMEOUT}, SHUTDOWN_TIMEOUT ${env.SHUTDOWN_TIMEOUT}`,
        `HAProxy marked the old instance DOWN ${spread(restarts.map((r) => r.downAfterMs))} ms after its SIGTERM ` +
        `(min / median / max; its listeners closed ${DRAIN_DELAY_MS} ms after it)`,
        `a replacement was UP in HAProxy ${spread(restarts.map((r) => r.upAfterMs))} ms after it was started`,
        `sessions per server (${backends.join(" / ")}): ${
          slots.map((slot) => `${slot.name} ${backends.map((name) => sessions(name, slot.name)).join(" / ")}`).join(", ")
        }; the TCP gRPC connection moved ${tcpConnections - 1} times`,
        `order: ${restarts.map((r) => `${r.replaced} → ${r.by}`).join(", ")}`
      ]
    })
  }, 300_000)
})
