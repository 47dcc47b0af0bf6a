/**
 * Graceful gRPC servers, judged by a real grpc-js client against a real
 * grpc-js server on port 0, through the real shutdown sequence. Sockets and
 * timers are real, so timing assertions use generous margins.
 */
import * as grpc from "@grpc/grpc-js"
import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Data, Deferred, Effect, Exit, Fiber, Metric, Schedule, Stream } from "effect"
import { type AddressInfo, createServer } from "node:net"
import * as Grpc from "../src/Grpc.ts"
import * as Http from "../src/Http.ts"
import { Health, Quit, Shutdown } from "../src/index.ts"
import { DemoClient, demoProto } from "./support/grpcClient.ts"
import { testCertificate } from "./support/http.ts"
import { captureLogs } from "./support/logs.ts"
import { silent } from "./support/raw.ts"

interface WaitRequest {
  readonly ms: number
  readonly tag: string
}
interface NumberMessage {
  readonly value: number
}
type DemoMessages = {
  readonly Wait: { readonly request: WaitRequest; readonly response: { readonly tag: string } }
  readonly Fail: { readonly request: { readonly kind: string }; readonly response: { readonly tag: string } }
  readonly Ticks: { readonly request: { readonly every_ms: number }; readonly response: { readonly n: number } }
  readonly Sum: { readonly request: NumberMessage; readonly response: { readonly sum: number; readonly count: number } }
  readonly Double: { readonly request: NumberMessage; readonly response: NumberMessage }
}

class NotFound extends Data.TaggedError("NotFound")<{ readonly what: string }> {}
class Unmapped extends Data.TaggedError("Unmapped")<{ readonly message: string }> {}

/** What the handlers did, in order; tests wait for an entry without polling. */
class Journal {
  readonly entries: Array<string> = []
  readonly #seen = new Map<string, Deferred.Deferred<void>>()
  #deferred(entry: string) {
    let deferred = this.#seen.get(entry)
    if (deferred === undefined) this.#seen.set(entry, deferred = Deferred.makeUnsafe<void>())
    return deferred
  }
  add(entry: string) {
    return Effect.sync(() => {
      this.entries.push(entry)
      Deferred.doneUnsafe(this.#deferred(entry), Exit.void)
    })
  }
  await(entry: string) {
    return Deferred.await(this.#deferred(entry)).pipe(Effect.timeout("5 seconds"))
  }
}

const demoService = (journal: Journal) =>
  Effect.map(Grpc.loadService<DemoMessages>(demoProto, "demo.Demo"), (Demo) =>
    Grpc.service(Demo, {
      Wait: Grpc.unary((request, call) =>
        Effect.gen(function*() {
          yield* journal.add(`started ${request.tag}`)
          const tag = call.metadata.get("x-tag")[0]
          if (tag !== undefined) {
            const headers = new grpc.Metadata()
            headers.set("x-echo", String(tag))
            yield* call.sendMetadata(headers)
            call.trailers.set("x-trailer", `after ${request.tag}`)
          }
          yield* Effect.sleep(request.ms)
          yield* journal.add(`ended ${request.tag}`)
          return { tag: request.tag }
        }).pipe(
          Effect.onInterrupt(() => journal.add(`interrupted ${request.tag}`)),
          Effect.ensuring(journal.add(`finalized ${request.tag}`))
        )
      ),
      Fail: Grpc.unary((request) => {
        if (request.kind === "throw") throw new Error("the handler threw")
        return Effect.gen(function*() {
          switch (request.kind) {
            case "not-found":
              return yield* new NotFound({ what: "the thing" })
            case "status":
              return yield* new Grpc.StatusError({ code: grpc.status.PERMISSION_DENIED, details: "no entry" })
            case "unmapped":
              return yield* new Unmapped({ message: "nobody mapped me" })
            default:
              return yield* Effect.die(new Error("the handler broke"))
          }
        })
      }),
      Ticks: Grpc.serverStream((request, call) =>
        Stream.fromSchedule(Schedule.spaced(`${request.every_ms} millis`)).pipe(
          Stream.map((n) => ({ n })),
          Stream.interruptWhen(call.closing)
        )
      ),
      Sum: Grpc.clientStream((requests) =>
        Stream.runFold(requests, () => ({ sum: 0, count: 0 }), (total, n) => ({
          sum: total.sum + n.value,
          count: total.count + 1
        }))
      ),
      Double: Grpc.bidi((requests) => Stream.map(requests, (n) => ({ value: n.value * 2 })))
    }, {
      onFailure: (error) =>
        error._tag === "NotFound" ? { code: grpc.status.NOT_FOUND, details: `not found: ${error.what}` } : undefined
    }))

const serveDemo = (journal: Journal, name = "grpc") =>
  Effect.flatMap(demoService(journal), (service) => Grpc.serve({ services: [service], name, host: "127.0.0.1", port: 0 }))

/**
 * The demo server run by `Shutdown.run`, as a program would be: `report`
 * completes when the shutdown that follows `Quit.fire` has finished.
 */
const running = (journal: Journal, name?: string) =>
  Effect.gen(function*() {
    const ready = yield* Deferred.make<Grpc.Handle>()
    const program = Effect.scoped(Effect.gen(function*() {
      yield* Deferred.succeed(ready, yield* serveDemo(journal, name))
      return yield* Effect.never
    }))
    const shutdown = yield* Effect.forkChild(Shutdown.run(program), { startImmediately: true })
    const server = yield* Deferred.await(ready)
    const client = new DemoClient(server.address)
    yield* Effect.addFinalizer(() => Effect.sync(() => client.close()))
    return { server, client, report: Fiber.join(shutdown) }
  })

const withQuit = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: Parameters<typeof Quit.layer>[0] = {},
  config: Parameters<typeof Quit.layer>[1] = {}
) =>
  Effect.provide(effect, Quit.layer(options, config)).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))

const metric = (id: string, attributes: Record<string, string>) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.find((s) => s.id === id && JSON.stringify(s.attributes) === JSON.stringify(attributes))
    return found?.type === "Gauge" ? found.state.value : found?.type === "Counter" ? found.state.count : undefined
  })

const promise = <A>(run: () => Promise<A>) => Effect.promise(run)
const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo
      probe.close(() => resolve(port))
    })
  })
const now = Effect.sync(() => performance.now())
const awaitPhase = (phase: Quit.Phase) =>
  Stream.runDrain(Stream.takeUntil(Quit.phases, (change) => change.phase === phase))

describe("Grpc: draining on quit", () => {
  it.live(
    "a call in flight when quit fires completes OK; health says NOT_SERVING during the drain delay; new calls get UNAVAILABLE",
    () =>
      withQuit(
        Effect.gen(function*() {
          const journal = new Journal()
          const { client, report, server } = yield* running(journal)
          assert.strictEqual(yield* promise(() => client.check("")), "SERVING")
          assert.strictEqual(yield* promise(() => client.check("demo.Demo")), "SERVING")
          const watch = client.watch("demo.Demo")
          const inFlight = client.unary("Wait", { ms: 1200, tag: "in-flight" })
          yield* journal.await("started in-flight")
          assert.strictEqual(yield* server.inFlight, 1)
          assert.strictEqual(yield* metric("effect_graceful_in_flight", { group: "grpc" }), 1)

          yield* Quit.fire("test")
          // The drain delay (600 ms) has not ended: still serving, but telling
          // everyone not to route here.
          assert.strictEqual(yield* promise(() => client.check("")), "NOT_SERVING")
          assert.strictEqual(yield* promise(() => client.check("demo.Demo")), "NOT_SERVING")
          // Phase `stopping` begins when the drain delay ends.
          assert.strictEqual((yield* Quit.phase).phase, "draining", "health changed before the drain delay ended")
          assert.strictEqual(Quit.describe(yield* Quit.fired), "requested: test")

          yield* awaitPhase("stopping")
          const fresh = new DemoClient(server.address)
          const refused = yield* promise(() => fresh.unary("Wait", { ms: 0, tag: "too late" }).done)
          fresh.close()
          const reused = yield* promise(() => client.unary("Wait", { ms: 0, tag: "too late again" }).done)
          assert.strictEqual(refused.status.code, grpc.status.UNAVAILABLE)
          assert.strictEqual(reused.status.code, grpc.status.UNAVAILABLE)

          const done = yield* promise(() => inFlight.done)
          assert.strictEqual(done.status.code, grpc.status.OK)
          assert.deepStrictEqual(done.messages, [{ tag: "in-flight" }])
          const result = yield* report
          // With a 10 s drain timeout, a shutdown that outlasted the call would end `cut` (the row below) or at a deadline.
          assert.strictEqual(result.ending, "graceful", "the shutdown ended with the last call")

          const watched = yield* promise(() => watch.done)
          assert.deepStrictEqual(watched.messages.map((m) => m["status"]), ["SERVING", "NOT_SERVING"])
          assert.strictEqual(watched.status.code, grpc.status.OK, "the Watch stream was ended with OK")
          assert.notInclude(journal.entries, "started too late")
          const row = result.rows.find((r) => r.name === "grpc")
          assert.deepInclude(row, { kind: "grpc", outcome: "done", inFlightAtDrain: 1, inFlightAtEnd: 0 })
          assert.strictEqual(result.exitCode, 0)
          assert.strictEqual(yield* metric("effect_graceful_in_flight", { group: "grpc" }), 0)
        }),
        { drainDelay: "600 millis", drainTimeout: "10 seconds" }
      )
  )

  it.live("a call longer than the drain timeout is cut: its finalizer runs, the client sees CANCELLED or UNAVAILABLE", () =>
    withQuit(
      Effect.gen(function*() {
        const journal = new Journal()
        const { client, report } = yield* running(journal)
        const long = client.unary("Wait", { ms: 30_000, tag: "long" })
        yield* journal.await("started long")
        const firedAt = yield* now
        yield* Quit.fire("test")
        const done = yield* promise(() => long.done)
        assert.notInclude(journal.entries, "ended long", "the client saw the cut before the call's 30 s ended")
        assert.include([grpc.status.CANCELLED, grpc.status.UNAVAILABLE], done.status.code)
        assert.isAtLeast(done.endedAt - firedAt, 280, "not before the drain timeout")
        const result = yield* report
        assert.includeMembers(journal.entries, ["interrupted long", "finalized long"])
        const row = result.rows.find((r) => r.name === "grpc")
        assert.deepInclude(row, { outcome: "cut", inFlightAtEnd: 0, detail: "1 cut at the drain deadline" })
        assert.strictEqual(yield* metric("effect_graceful_units_cut_total", { group: "grpc" }), 1)
      }),
      { drainTimeout: "300 millis" }
    ))

  it.live("a server stream that watches `closing` ends with OK after the drain delay, well before the drain timeout", () =>
    withQuit(
      Effect.gen(function*() {
        const journal = new Journal()
        const { client, report } = yield* running(journal)
        const ticks = client.serverStream("Ticks", { every_ms: 20 })
        yield* Effect.sleep("150 millis")
        const firedAt = yield* now
        yield* Quit.fire("test")
        const atQuit = ticks.messages.length
        assert.isAbove(atQuit, 0)
        const done = yield* promise(() => ticks.done)
        assert.strictEqual(done.status.code, grpc.status.OK)
        assert.isAbove(done.messages.length, atQuit, "it kept streaming through the drain delay")
        assert.isAtLeast(done.endedAt - firedAt, 250, "it ended when the server stopped, not at the quit event")
        const result = yield* report
        assert.strictEqual(yield* metric("effect_graceful_units_cut_total", { group: "grpc" }), 0, "the 10 s drain timeout never came into play: nothing cut")
        assert.deepInclude(result.rows.find((r) => r.name === "grpc"), { outcome: "done" })
      }),
      { drainDelay: "300 millis", drainTimeout: "10 seconds" }
    ))
})

describe("Grpc: calls", () => {
  it.live("a client cancel or a passed deadline interrupts the handler's fiber, and its finalizer runs", () =>
    withQuit(Effect.gen(function*() {
      const journal = new Journal()
      const { client, server } = yield* running(journal)
      const cancelled = client.unary("Wait", { ms: 30_000, tag: "cancel-me" })
      yield* journal.await("started cancel-me")
      cancelled.call.cancel()
      yield* journal.await("finalized cancel-me")
      assert.include(journal.entries, "interrupted cancel-me")
      assert.strictEqual((yield* promise(() => cancelled.done)).status.code, grpc.status.CANCELLED)

      const late = client.unary("Wait", { ms: 30_000, tag: "too-slow" }, { deadlineMs: 200 })
      yield* journal.await("finalized too-slow")
      assert.include(journal.entries, "interrupted too-slow")
      assert.strictEqual((yield* promise(() => late.done)).status.code, grpc.status.DEADLINE_EXCEEDED)
      assert.strictEqual(yield* server.inFlight, 0)
    })))

  it.live("typed failures map to the chosen status, a StatusError keeps its own, defects (and throws) are INTERNAL and logged", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      const { client } = yield* running(new Journal(), "failures")
      const fail = (kind: string) => promise(() => client.unary("Fail", { kind }).done.then((r) => r.status))
      assert.deepInclude(yield* fail("not-found"), { code: grpc.status.NOT_FOUND, details: "not found: the thing" })
      assert.deepInclude(yield* fail("status"), { code: grpc.status.PERMISSION_DENIED, details: "no entry" })
      assert.deepInclude(yield* fail("unmapped"), { code: grpc.status.UNKNOWN, details: "nobody mapped me" })
      const defect = yield* fail("defect")
      assert.deepInclude(defect, { code: grpc.status.INTERNAL, details: "Internal error" })
      assert.deepInclude(yield* fail("throw"), { code: grpc.status.INTERNAL, details: "Internal error" })
      const logged = logs.filter((log) => log.level === "Error" && log.text.includes("/demo.Demo/Fail failed with a defect"))
      assert.strictEqual(logged.length, 2)
      assert.include(logged[0]!.cause, "the handler broke")
      assert.include(logged[1]!.cause, "the handler threw")
      const calls = (code: string) =>
        metric("effect_graceful_grpc_calls_total", { server: "failures", method: "/demo.Demo/Fail", code })
      assert.strictEqual(yield* calls("NOT_FOUND"), 1)
      assert.strictEqual(yield* calls("INTERNAL"), 2)
    }).pipe(provide))
  })

  it.live("metadata in and out: the handler reads request metadata, sends headers and trailers", () =>
    withQuit(Effect.gen(function*() {
      const { client } = yield* running(new Journal())
      const metadata = new grpc.Metadata()
      metadata.set("x-tag", "hello")
      const done = yield* promise(() => client.unary("Wait", { ms: 0, tag: "meta" }, { metadata }).done)
      assert.strictEqual(done.status.code, grpc.status.OK)
      assert.deepStrictEqual(done.headers?.get("x-echo"), ["hello"])
      assert.deepStrictEqual(done.status.metadata.get("x-trailer"), ["after meta"])
    })))

  it.live("client-streaming and bidi handlers read requests as a Stream and answer", () =>
    withQuit(Effect.gen(function*() {
      const { client } = yield* running(new Journal())
      const sum = yield* promise(() => client.clientStream("Sum", [{ value: 1 }, { value: 2 }, { value: 39 }]).done)
      assert.strictEqual(sum.status.code, grpc.status.OK)
      assert.deepStrictEqual(sum.messages, [{ sum: 42, count: 3 }])
      const doubled = yield* promise(() => client.bidi("Double", [{ value: 1 }, { value: 2 }, { value: 3 }]).done)
      assert.strictEqual(doubled.status.code, grpc.status.OK)
      assert.deepStrictEqual(doubled.messages, [{ value: 2 }, { value: 4 }, { value: 6 }])
    })))
})

describe("Grpc: connections with no call", () => {
  it.live("a TLS handshake that never finishes is closed after a short grace, not held to the close deadline", () => {
    const { logs, provide } = captureLogs()
    return withQuit(provide(Effect.gen(function*() {
      const { key, cert } = testCertificate()
      const credentials = grpc.ServerCredentials.createSsl(null, [{ private_key: key, cert_chain: cert }])
      const ready = yield* Deferred.make<Grpc.Handle>()
      const program = Effect.scoped(Effect.gen(function*() {
        const service = yield* demoService(new Journal())
        yield* Deferred.succeed(ready, yield* Grpc.serve({ services: [service], host: "127.0.0.1", port: 0, credentials }))
        return yield* Effect.never
      }))
      const shutdown = yield* Effect.forkChild(Shutdown.run(program), { startImmediately: true })
      const server = yield* Deferred.await(ready)
      const halfOpen = yield* promise(() => silent(server.port))
      yield* Quit.fire("test")
      const report = yield* Fiber.join(shutdown)
      // The server destroyed it before the shutdown ended: its end reaches the
      // client now. (grpc-js alone left it open until TLS's own handshake
      // timeout, two minutes: this wait then outlasts the test.)
      yield* promise(() => halfOpen.ended)
      assert.deepInclude(report, { ending: "graceful", exitCode: 0 })
      assert.isFalse(logs.some((log) => log.text.includes("still open at the close deadline")), "no warning: nothing was in flight")
    })), { closeTimeout: "10 seconds", shutdownTimeout: "20 seconds" })
  })
})

describe("Grpc: health and binding", () => {
  it.live("health says NOT_SERVING while the program starts, SERVING once it runs; a service can be set apart", () =>
    withQuit(
      Effect.gen(function*() {
        const { client, server } = yield* running(new Journal())
        assert.strictEqual(yield* promise(() => client.check("")), "NOT_SERVING")
        yield* Quit.markRunning
        yield* Effect.yieldNow
        assert.strictEqual(yield* promise(() => client.check("")), "SERVING")
        yield* server.setStatus("demo.Demo", "NOT_SERVING")
        assert.strictEqual(yield* promise(() => client.check("demo.Demo")), "NOT_SERVING")
        assert.strictEqual(yield* promise(() => client.check("")), "SERVING")
        assert.strictEqual(yield* promise(() => client.check("no.Such")), "NOT_FOUND")
      }),
      {},
      { phase: "starting" }
    ))

  it.live("health follows readiness beyond the phase: a failing check or the program's mark is NOT_SERVING, for the server and its services", () =>
    withQuit(
      Effect.gen(function*() {
        let dbUp = true
        yield* Health.check("db", Effect.suspend(() => dbUp ? Effect.void : Effect.fail("db down")))
        const { client } = yield* running(new Journal())
        yield* Quit.markRunning
        yield* Effect.yieldNow
        const answers: Array<string> = []
        const ask = Effect.flatMap(promise(() => Promise.all([client.check(""), client.check("demo.Demo")])), (statuses) =>
          Effect.sync(() => void answers.push(statuses.join("/"))))
        yield* ask
        dbUp = false
        yield* ask
        dbUp = true
        yield* ask
        yield* Health.markNotReady("warming the cache")
        yield* ask
        yield* Health.markReady
        yield* ask
        assert.deepStrictEqual(answers, [
          "SERVING/SERVING",
          "NOT_SERVING/NOT_SERVING",
          "SERVING/SERVING",
          "NOT_SERVING/NOT_SERVING",
          "SERVING/SERVING"
        ])
      }),
      {},
      { phase: "starting" }
    ))

  it.live("without host and port in code, GRPC_HOST and GRPC_PORT from the environment say where to bind; a bad one is an InvalidOption naming it", () =>
    withQuit(Effect.gen(function*() {
      const port = yield* promise(freePort)
      const env = { GRPC_HOST: "127.0.0.1", GRPC_PORT: String(port) }
      const server = yield* Effect.flatMap(demoService(new Journal()), (service) => Grpc.serve({ services: [service] })).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))
      )
      assert.strictEqual(server.address, `127.0.0.1:${port}`)
      const client = new DemoClient(server.address)
      assert.strictEqual(yield* promise(() => client.check("demo.Demo")), "SERVING")
      client.close()
      const bad = yield* Effect.flatMap(demoService(new Journal()), (service) => Grpc.serve({ services: [service], name: "bad" })).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: { GRPC_PORT: "70000" } })),
        Effect.flip
      )
      assert.deepInclude(bad, { _tag: "InvalidOption", variable: "GRPC_PORT", value: "70000" })
    })))

  it.live("an address in use fails with the BindError of every port the library binds (Http.BindError), naming the address", () =>
    withQuit(Effect.gen(function*() {
      const first = yield* serveDemo(new Journal())
      const second = yield* Effect.exit(Effect.scoped(
        Effect.flatMap(demoService(new Journal()), (service) =>
          Grpc.serve({ services: [service], name: "second", host: "127.0.0.1", port: first.port }))
      ))
      const error = Exit.isFailure(second) ? Cause.squash(second.cause) : undefined
      assert.instanceOf(error, Grpc.BindError)
      assert.instanceOf(error, Http.BindError, "one class for every port")
      assert.deepInclude(error as Grpc.BindError, { _tag: "BindError", address: `127.0.0.1:${first.port}`, code: "EADDRINUSE" })
      assert.strictEqual((error as Grpc.BindError).message, `cannot listen on 127.0.0.1:${first.port}: address already in use (EADDRINUSE)`)
    })))
})
