/**
 * Closers on real resources — a SQLite database, a file handle, a TCP server
 * with a callback close, a child process, a Fastify app — with real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import Fastify from "fastify"
import { type ChildProcess, spawn } from "node:child_process"
import { request } from "node:http"
import { type FileHandle, open } from "node:fs/promises"
import { connect, createServer, type Server } from "node:net"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import * as Closer from "../src/Closer.ts"
import { Quit } from "../src/index.ts"
import { captureLogs } from "./support/logs.ts"
import { tempDir } from "./support/temp.ts"
import { rows } from "./support/quit.ts"

class Db extends Context.Service<Db, DatabaseSync>()("test/Db") {}
class Port extends Context.Service<Port, number>()("test/Port") {}
class AuditLog extends Context.Service<AuditLog, FileHandle>()("test/AuditLog") {}

const withQuit = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, Quit.layer())
const byName = Effect.map(rows, (all) => Object.fromEntries(all.map((row) => [row.name, row])))
const closerDir = () => tempDir("closer")

const listen = (server: Server) =>
  Effect.callback<Server>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server))))
const port = (server: Server) => (server.address() as AddressInfo).port

/** A Node child process that prints `ready` once its handlers are installed. */
const startChild = (script: string) =>
  Effect.callback<ChildProcess>((resume) => {
    const child = spawn(process.execPath, ["-e", `${script}; setInterval(() => {}, 1000); console.log("ready")`])
    child.stdout!.once("data", () => resume(Effect.succeed(child)))
  })

const exited = (child: ChildProcess) =>
  Effect.callback<NodeJS.Signals | null>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(child.signalCode))
    child.once("exit", (_code, signal) => resume(Effect.succeed(signal)))
  })

const refused = (p: number) =>
  Effect.callback<string>((resume) => {
    const socket = connect(p, "127.0.0.1")
    socket.once("connect", () => (socket.destroy(), resume(Effect.succeed("connected"))))
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code ?? "error")))
  })

const get = (url: string) =>
  Effect.callback<[number | undefined, string]>((resume) => {
    request(url, { agent: false }, (res) => {
      let body = ""
      res.on("data", (chunk) => body += chunk).on("end", () => resume(Effect.succeed([res.statusCode, body])))
    }).end()
  })

describe("closers on real resources", () => {
  it.live("sync, Promise, callback and child-process closes run as named layers, in dependency order", () =>
    withQuit(Effect.gen(function*() {
      const dir = closerDir()
      const order: Array<string> = []
      const made: { db?: DatabaseSync; file?: FileHandle; server?: Server; child?: ChildProcess } = {}
      const DbLive = Closer.layer(
        Db,
        "db",
        Effect.sync(() => (made.db = new DatabaseSync(join(dir, "app.db")))),
        (db) => () => (db.close(), order.push("db"))
      )
      const AuditLogLive = Closer.layer(
        AuditLog,
        "audit log",
        Effect.gen(function*() {
          (yield* Db).exec("create table if not exists events (text)")
          return made.file = yield* Effect.promise(() => open(join(dir, "audit.log"), "a"))
        }),
        (file) => () => file.close().then(() => order.push("audit log"))
      )
      const ServerLive = Layer.effectDiscard(Effect.gen(function*() {
        yield* AuditLog
        made.server = yield* Closer.make("server", listen(createServer()), (server) =>
          Closer.callback((done) => server.close(done)).pipe(Effect.andThen(Effect.sync(() => order.push("server")))))
      }))
      const SidecarLive = Layer.effectDiscard(Effect.gen(function*() {
        yield* AuditLog
        made.child = yield* Closer.make("sidecar", startChild(""), (child) =>
          Closer.childProcess(child).pipe(Effect.andThen(Effect.sync(() => order.push("sidecar")))), { kind: "process" })
      }))
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(
        Layer.mergeAll(ServerLive, SidecarLive).pipe(Layer.provide(AuditLogLive), Layer.provide(DbLive)),
        scope
      )
      assert.isTrue(made.server!.listening)
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(order.slice(0, 2).sort(), ["server", "sidecar"], "users close first, in parallel")
      assert.deepStrictEqual(order.slice(2), ["audit log", "db"], "then what they use, dependencies last")
      assert.isFalse(made.db!.isOpen)
      assert.strictEqual(made.file!.fd, -1)
      assert.isFalse(made.server!.listening)
      assert.strictEqual(made.child!.signalCode, "SIGTERM")
      const rows = yield* byName
      assert.deepStrictEqual(
        ["db", "audit log", "server", "sidecar"].map((name) => [name, rows[name]!.kind, rows[name]!.outcome]),
        [["db", "closer", "done"], ["audit log", "closer", "done"], ["server", "closer", "done"], ["sidecar", "process", "done"]]
      )
    })))

  it.live("a hung closer is abandoned at its timeout and a failing one is logged, while the others close", () => {
    const { logs, provide } = captureLogs()
    return withQuit(Effect.gen(function*() {
      const dir = closerDir()
      const made: { db?: DatabaseSync; file?: FileHandle } = {}
      // A server with a client still connected: `close` waits for it forever.
      const accepted = yield* Deferred.make<void>()
      const busy = yield* listen(createServer(() => Deferred.doneUnsafe(accepted, Exit.void)))
      const client = connect(port(busy), "127.0.0.1").on("error", () => {})
      yield* Deferred.await(accepted)
      // Set if the hung close ever finishes by itself (it can only once the client is gone).
      let closedByItself = false
      const Hung = Layer.effectDiscard(
        Closer.make(
          "busy server",
          Effect.succeed(busy),
          (server) => Closer.callback((done) => server.close((error) => (closedByItself = true, done(error)))),
          { timeout: "200 millis" }
        )
      )
      // Never listened: its callback close reports ERR_SERVER_NOT_RUNNING.
      const Failing = Closer.layerDiscard("idle server", Closer.callback((done) => createServer().close(done)))
      const Sqlite = Layer.effectDiscard(
        Closer.make("db", Effect.sync(() => (made.db = new DatabaseSync(join(dir, "app.db")))), (db) => () => db.close())
      )
      const File = Layer.effectDiscard(
        Closer.make("file", Effect.promise(() => open(join(dir, "x.log"), "a")), (file) => () => (made.file = file).close())
      )
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(Layer.mergeAll(Hung, Failing, Sqlite, File), scope)
      const started = Date.now()
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      yield* Scope.close(scope, Exit.void)
      const took = Date.now() - started
      const hungStillPending = !closedByItself
      client.destroy()
      assert.isAtLeast(took, 200)
      assert.isTrue(hungStillPending, "the close returned while the hung one still hung: bounded by its timeout, not waited out")
      const rows = yield* byName
      assert.deepInclude(rows["busy server"], { outcome: "timed out", detail: "abandoned after 200ms" })
      assert.strictEqual(rows["idle server"]!.outcome, "failed")
      assert.include(rows["idle server"]!.detail, "not running")
      assert.strictEqual(rows["db"]!.outcome, "done")
      assert.strictEqual(rows["file"]!.outcome, "done")
      assert.isBelow(rows["db"]!.millis!, rows["busy server"]!.millis!, "the db closed before the hung closer was abandoned: it did not wait for it")
      assert.isFalse(made.db!.isOpen)
      assert.strictEqual(made.file!.fd, -1)
      assert.isTrue(logs.some((log) => log.text === "busy server (closer) did not close within 200ms; abandoned"))
      const failure = logs.find((log) => log.text === "idle server (closer) failed to close")
      assert.include(failure?.cause, "CloseError: Server is not running")
    }).pipe(provide))
  })

  it.live("a child process that ignores SIGTERM is killed when its close is abandoned", () =>
    withQuit(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const child = yield* Closer.make(
        "stubborn",
        startChild(`process.on("SIGTERM", () => {})`),
        (child) => Closer.childProcess(child),
        { timeout: "300 millis" }
      ).pipe(Scope.provide(scope))
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* exited(child), "SIGKILL")
      assert.deepInclude((yield* byName)["stubborn"], { outcome: "timed out" })
    }).pipe(captureLogs().provide)))
})

describe("framework bridge", () => {
  it.live("a framework's shutdown hook fires the quit event through a plain function", () =>
    withQuit(Effect.gen(function*() {
      const stop = yield* Quit.trigger
      const app = Fastify()
      app.addHook("onClose", (_instance, done) => {
        stop("fastify closed")
        done()
      })
      yield* Effect.promise(() => app.listen({ port: 0, host: "127.0.0.1" }))
      assert.isFalse(yield* Quit.hasFired)
      // Outside Effect: the framework decides to shut down on its own.
      setTimeout(() => void app.close(), 10)
      assert.deepStrictEqual(yield* Quit.fired, { _tag: "Requested", reason: "fastify closed" })
    })))

  it.live("fastify.close registered as a closer: the request in flight finishes, then the database it uses closes", () =>
    withQuit(Effect.gen(function*() {
      const order: Array<string> = []
      const arrived = yield* Deferred.make<void>()
      const DbLive = Closer.layer(
        Db,
        "db",
        Effect.sync(() => new DatabaseSync(join(closerDir(), "app.db"))),
        (db) => () => (db.close(), order.push("db closed"))
      )
      const FastifyLive = Layer.effect(
        Port,
        Effect.gen(function*() {
          const db = yield* Db
          db.exec("create table hits (at)")
          const app = yield* Closer.make("fastify", Effect.sync(() => Fastify()), (app) => () =>
            app.close().then(() => order.push("fastify closed")), { kind: "http", timeout: "5 seconds" })
          app.get("/slow", async () => {
            Deferred.doneUnsafe(arrived, Exit.void)
            await new Promise((resolve) => setTimeout(resolve, 300))
            db.prepare("insert into hits values (?)").run(Date.now())
            order.push("request done")
            return "done"
          })
          yield* Effect.promise(() => app.listen({ port: 0, host: "127.0.0.1" }))
          return (app.server.address() as AddressInfo).port
        })
      ).pipe(Layer.provide(DbLive))
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(FastifyLive, scope)
      const p = Context.get(context, Port)
      // A client without keep-alive: Fastify's close waits out idle keep-alive sockets (fastify#7044).
      const response = yield* get(`http://127.0.0.1:${p}/slow`).pipe(Effect.forkChild({ startImmediately: true }))
      yield* Deferred.await(arrived)
      yield* Quit.fire("test") // a shutdown: the quit event, then the scope closes
      const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild({ startImmediately: true }))
      assert.deepStrictEqual(yield* Fiber.join(response), [200, "done"])
      yield* Fiber.join(closing)
      assert.deepStrictEqual(order, ["request done", "fastify closed", "db closed"])
      assert.strictEqual(yield* refused(p), "ECONNREFUSED")
      const rows = yield* byName
      assert.deepInclude(rows["fastify"], { kind: "http", outcome: "done" })
      assert.isAtLeast(rows["fastify"]!.millis!, 200, "fastify.close waited for the request in flight")
    })))
})
