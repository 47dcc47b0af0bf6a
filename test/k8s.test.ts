/**
 * examples/k8s/deployment.yaml: its probes, grace period and timing agree
 * with each other as the comment in it says.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Result } from "effect"
import { readFileSync } from "node:fs"
import { Options } from "../src/index.ts"

const yaml = readFileSync(new URL("../examples/k8s/deployment.yaml", import.meta.url), "utf8")

const env = (name: string) => {
  const match = new RegExp(`name: ${name}, value: "?([^" }]+)"? }`).exec(yaml)
  assert.isNotNull(match, name)
  const parsed = Options.parseDuration(match![1]!)
  assert.isTrue(Result.isSuccess(parsed), name)
  return Duration.toSeconds(Result.getOrThrow(parsed))
}
const number = (pattern: RegExp) => Number(pattern.exec(yaml)![1])

describe("the Kubernetes manifest", () => {
  it("gives the shutdown its budget: probes < drain delay, timeouts < shutdown timeout < grace period", () => {
    const drainDelay = env("DRAIN_DELAY")
    const drainTimeout = env("DRAIN_TIMEOUT")
    const closeTimeout = env("CLOSE_TIMEOUT")
    const shutdownTimeout = env("SHUTDOWN_TIMEOUT")
    const grace = number(/terminationGracePeriodSeconds: (\d+)/)
    const readinessPeriod = number(/readinessProbe:[\s\S]*?periodSeconds: (\d+)/)
    const readinessThreshold = number(/readinessProbe:[\s\S]*?failureThreshold: (\d+)/)
    assert.isAtLeast(drainDelay, readinessPeriod * readinessThreshold, "readiness fails before the listeners close")
    assert.isAtLeast(shutdownTimeout, drainDelay + drainTimeout + closeTimeout)
    assert.isAbove(grace, shutdownTimeout, "the kubelet's SIGKILL comes after our own deadline")
    assert.notMatch(yaml, /preStop:/, "no preStop sleep: the drain delay is in the app")
    assert.match(yaml, /readinessProbe:\s+httpGet: \{ path: \/readyz/)
    assert.match(yaml, /livenessProbe:\s+httpGet: \{ path: \/livez/)
  })
})
