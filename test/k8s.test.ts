/**
 * examples/k8s/deployment.yaml: its probes, grace period and timing agree
 * with each other, and the drain and close timeouts its comment gives are the
 * ones the library derives from the two values it sets.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect } from "effect"
import { readFileSync } from "node:fs"
import { Options, Platform } from "../src/index.ts"

const yaml = readFileSync(new URL("../examples/k8s/deployment.yaml", import.meta.url), "utf8")

const env = Object.fromEntries([...yaml.matchAll(/- \{ name: (\w+), value: "?([^" }]+)"? \}/g)].map(([, name, value]) => [name!, value!]))
const number = (pattern: RegExp) => Number(pattern.exec(yaml)![1])
const commented = (name: string) => Number(new RegExp(`#\\s+${name}\\s+([\\d.]+)s`).exec(yaml)![1])

describe("the Kubernetes manifest", () => {
  it.effect("gives the shutdown its budget: derived timeouts as its comment says, probes < drain delay, deadlines < grace period", () =>
    Effect.gen(function*() {
      const options = yield* Options.load().pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))
      )
      const seconds = (duration: Duration.Duration) => Duration.toMillis(duration) / 1000
      assert.deepStrictEqual([options.origins.drainTimeout, options.origins.closeTimeout], ["derived", "derived"])
      assert.strictEqual(seconds(options.drainTimeout), commented("drain timeout"))
      assert.strictEqual(seconds(options.closeTimeout), commented("close timeout"))
      const grace = number(/terminationGracePeriodSeconds: (\d+)/)
      const readinessPeriod = number(/readinessProbe:[\s\S]*?periodSeconds: (\d+)/)
      const readinessThreshold = number(/readinessProbe:[\s\S]*?failureThreshold: (\d+)/)
      assert.isAtLeast(seconds(options.drainDelay), readinessPeriod * readinessThreshold, "readiness fails before the listeners close")
      const closeDeadline = seconds(options.drainDelay) + seconds(options.drainTimeout) + seconds(options.closeTimeout)
      assert.isAtMost(closeDeadline, seconds(options.shutdownTimeout))
      assert.isAbove(grace, seconds(options.shutdownTimeout), "the kubelet's SIGKILL comes after our own deadline")
      assert.strictEqual(env["PLATFORM_GRACE"], `${grace}s`, "the Kubernetes preset knows the grace period")
      const preset = yield* Platform.load().pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: { ...env, KUBERNETES_SERVICE_HOST: "10.0.0.1" } }))
      )
      assert.deepStrictEqual(preset.applied.warnings, [], "nothing in the manifest that the preset warns about")
      assert.notMatch(yaml, /preStop:/, "no preStop sleep: the drain delay is in the app")
      assert.match(yaml, /readinessProbe:\s+httpGet: \{ path: \/readyz/)
      assert.match(yaml, /livenessProbe:\s+httpGet: \{ path: \/livez/)
    }))
})
