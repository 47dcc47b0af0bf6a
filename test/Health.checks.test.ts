/**
 * Readiness beyond the phase: named checks with their own timeouts, the
 * program's own not-ready mark, and the detail view — on a real health server,
 * and under TestClock for the timeouts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Health from "../src/Health.ts"
import { Quit } from "../src/index.ts"
import { get, withQuit } from "./support/http.ts"
import { captureLogs } from "./support/logs.ts"

const listenOn = { port: 0, host: "127.0.0.1" } as const

/** The standalone health server, in a scope of its own; its port. */
const serve = (options: Health.Options = {}) =>
  Effect.map(Layer.build(Health.layer({ ...listenOn, ...options })), (context) => context.mapUnsafe.get(Health.Server.key) as Health.Server["Service"])

const probe = (port: number, path = "/readyz") => Effect.promise(() => get(port, path))

describe("Health checks", () => {
  it.live("readiness is 503 while a check fails and 200 once every check passes; the body names nothing unless detail is on", () =>
    withQuit(Effect.gen(function*() {
      let cacheUp = false
      yield* Health.check("db", Effect.void)
      yield* Health.check("cache", Effect.suspend(() => cacheUp ? Effect.void : Effect.fail(new Error("connection refused"))))
      const plain = yield* serve()
      const detailed = yield* serve({ detail: true })
      const failing = [yield* probe(plain.port), yield* probe(detailed.port), yield* probe(plain.port, "/livez")]
      cacheUp = true
      const passing = [yield* probe(plain.port), yield* probe(detailed.port)]
      assert.deepStrictEqual(failing.map((reply) => [reply.status, reply.body]), [
        [503, "not ready\n"],
        [503, "not ready\ncache: connection refused\n"],
        [200, "alive\n"]
      ])
      assert.deepStrictEqual(passing.map((reply) => [reply.status, reply.body]), [[200, "ready\n"], [200, "ready\n"]])
    }), {}, { phase: "running" }))

  it.live("checks passing do not make a program ready while it starts, nor once the quit event fired", () =>
    withQuit(Effect.gen(function*() {
      yield* Health.check("db", Effect.void)
      const { port } = yield* serve({ detail: true })
      const starting = yield* probe(port)
      yield* Quit.markRunning
      const running = yield* probe(port)
      yield* Quit.fire("test")
      const fired = yield* probe(port)
      assert.deepStrictEqual([starting, running, fired].map((reply) => [reply.status, reply.body]), [
        [503, "not ready\nstarting\n"],
        [200, "ready\n"],
        [503, "not ready\nshutting down\n"]
      ])
    })))

  it.effect("a hung check is cut at its timeout and counts as failing; a dying one fails too; each is logged once per change of state", () => {
    const { logs, provide } = captureLogs()
    return provide(withQuit(Effect.gen(function*() {
      let hang = true
      let crash = true
      yield* Health.check("slow", Effect.suspend(() => hang ? Effect.never : Effect.void), { timeout: "200 millis" })
      yield* Health.check("thrower", Effect.sync(() => {
        if (crash) throw new Error("boom")
      }))
      const pending = yield* Effect.forkChild(Health.isReady)
      yield* TestClock.adjust("199 millis")
      const beforeTimeout = pending.pollUnsafe()
      yield* TestClock.adjust("1 millis")
      const first = yield* Fiber.join(pending)
      // Two more probes: the same failures, no new log lines.
      for (let i = 0; i < 2; i++) {
        const again = yield* Effect.forkChild(Health.isReady)
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(again)
      }
      const logged = logs.filter((log) => log.text.startsWith("readiness check")).map((log) => `${log.level} ${log.text}`)
      hang = false
      crash = false
      const recovered = yield* Health.isReady
      assert.isUndefined(beforeTimeout, "still waiting for the hung check before its timeout")
      assert.isFalse(first)
      assert.deepStrictEqual(logged.sort(), [
        "Warn readiness check slow failing: timed out after 200ms",
        "Warn readiness check thrower failing: boom"
      ])
      assert.isTrue(recovered)
      assert.deepStrictEqual(
        logs.filter((log) => log.text.endsWith("passing again")).map((log) => log.text).sort(),
        ["readiness check slow passing again", "readiness check thrower passing again"]
      )
    }), {}, { phase: "running" }))
  })

  it.live("probes that ask while the checks run share that run", () =>
    withQuit(Effect.gen(function*() {
      let runs = 0
      yield* Health.check("db", Effect.andThen(Effect.sync(() => runs++), Effect.sleep("50 millis")))
      const { port } = yield* serve()
      const replies = yield* Effect.promise(() => Promise.all(Array.from({ length: 5 }, () => get(port, "/readyz"))))
      assert.deepStrictEqual(replies.map((reply) => reply.status), [200, 200, 200, 200, 200])
      assert.strictEqual(runs, 1)
    }), {}, { phase: "running" }))

  it.live("the program marks itself not ready and ready again while running; liveness stays 200", () => {
    const { logs, provide } = captureLogs()
    return provide(withQuit(Effect.gen(function*() {
      const { port } = yield* serve({ detail: true })
      const before = yield* probe(port)
      yield* Health.markNotReady("warming the cache")
      const marked = [yield* probe(port), yield* probe(port, "/livez")]
      const readyWhileMarked = yield* Health.isReady
      yield* Health.markReady
      const after = yield* probe(port)
      assert.deepStrictEqual([before, ...marked, after].map((reply) => [reply.status, reply.body]), [
        [200, "ready\n"],
        [503, "not ready\nmarked not ready: warming the cache\n"],
        [200, "alive\n"],
        [200, "ready\n"]
      ])
      assert.isFalse(readyWhileMarked)
      assert.deepStrictEqual(logs.filter((log) => log.text.startsWith("marked")).map((log) => `${log.level} ${log.text}`), [
        "Warn marked not ready: warming the cache",
        "Info marked ready"
      ])
    }), {}, { phase: "running" }))
  })

  it.live("marked not ready while starting, the program stays not ready once running, until it marks itself ready", () =>
    withQuit(Effect.gen(function*() {
      yield* Health.markNotReady("loading the model")
      yield* Quit.markRunning
      const running = yield* Health.isReady
      yield* Health.markReady
      assert.deepStrictEqual([running, yield* Health.isReady], [false, true])
    })))

  it.live("a check ends with its scope: a released layer's check no longer counts", () =>
    withQuit(Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Scope.provide(Health.check("replica", Effect.fail("down")), scope)
      const withCheck = yield* Health.isReady
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual([withCheck, yield* Health.isReady], [false, true])
    }), {}, { phase: "running" }))

  it.live("bad input: an empty name, a name registered twice, a timeout that is not a positive duration", () =>
    withQuit(Effect.gen(function*() {
      yield* Health.check("db", Effect.void)
      // As a JavaScript caller, or a value read from elsewhere, may pass them.
      const untyped = (text: string) => text as Health.CheckOptions["timeout"]
      const refused = yield* Effect.forEach(
        [
          Health.check(" ", Effect.void),
          Health.check("db", Effect.void),
          Health.check("cache", Effect.void, { timeout: untyped("0") }),
          Health.check("cache", Effect.void, { timeout: "-1s" }),
          Health.check("cache", Effect.void, { timeout: untyped("soon") })
        ],
        (attempt) => Effect.flip(attempt)
      )
      assert.deepStrictEqual(refused.map((error) => [error._tag, error.message]), [
        ["InvalidOption", `Health.check name=" ": expected a name for the check`],
        ["InvalidOption", `Health.check name="db": a check with this name is already registered; names must be unique`],
        ["InvalidOption", `Health.check cache timeout="0": must be more than 0`],
        ["InvalidOption", `Health.check cache timeout="-1s": must not be negative`],
        ["InvalidOption", `Health.check cache timeout="soon": expected a duration such as 5s, 500ms, 2m or "5 seconds"`]
      ])
      // Nothing refused was added: readiness has the one check, which passes.
      assert.isTrue(yield* Health.isReady)
    }), {}, { phase: "running" }))
})
