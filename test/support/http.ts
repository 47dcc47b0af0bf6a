/**
 * Real clients for the HTTP tests: raw sockets, keep-alive agents, the
 * node:http2 client, and a server run through the shutdown sequence.
 */
import { Effect, Fiber, type Layer, Metric, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as Http from "node:http"
import * as Http2 from "node:http2"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { Quit, type Report, Shutdown } from "../../src/index.ts"

export const portOf = (server: Net.Server): number => (server.address() as Net.AddressInfo).port

export interface Reply {
  readonly status: number | undefined
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
  /** performance.now() when the body ended (or the request failed). */
  readonly at: number
  readonly error?: string | undefined
}

/** A GET that never rejects: failures come back as `error`. */
export const get = (port: number, path: string, agent?: Http.Agent): Promise<Reply> =>
  new Promise((resolve) => {
    const request = Http.get({ port, host: "127.0.0.1", path, agent: agent ?? false }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => body += chunk)
      response.on("end", () => resolve({ status: response.statusCode, headers: response.headers, body, at: performance.now() }))
      response.on("error", (error) =>
        resolve({ status: response.statusCode, headers: response.headers, body, at: performance.now(), error: error.message })
      )
    })
    request.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ status: undefined, headers: {}, body: "", at: performance.now(), error: error.code ?? error.message })
    )
  })

/** Connects and reports `connected`, or the error code (`ECONNREFUSED`). */
export const connect = (port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve("connected")
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })

export interface IdleSockets {
  readonly count: number
  /** How many of them the server has closed so far. */
  closed(): number
  /** Resolves with performance.now() when the last one closed. */
  readonly allClosed: Promise<number>
  destroy(): void
}

/**
 * Opens `count` raw keep-alive connections, each of which completes one
 * request and then stays idle; `concurrency` at a time so that the listen
 * backlog never overflows.
 */
export const openIdle = async (port: number, count: number, concurrency = 50): Promise<IdleSockets> => {
  const sockets: Array<Net.Socket> = []
  let closed = 0
  let onAllClosed: (at: number) => void = () => {}
  const allClosed = new Promise<number>((resolve) => onAllClosed = resolve)
  const open = () =>
    new Promise<void>((resolve, reject) => {
      const socket = Net.connect(port, "127.0.0.1", () => socket.write("GET /idle HTTP/1.1\r\nHost: test\r\n\r\n"))
      let head = ""
      const onData = (chunk: Buffer) => {
        head += chunk.toString("latin1")
        if (head.includes("\r\n\r\n")) {
          socket.off("data", onData)
          if (!/connection: keep-alive/i.test(head)) reject(new Error(`not keep-alive: ${head}`))
          resolve()
        }
      }
      socket.on("data", onData)
      socket.on("error", () => {})
      socket.once("close", () => {
        if (++closed === count) onAllClosed(performance.now())
      })
      sockets.push(socket)
    })
  for (let i = 0; i < count; i += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, count - i) }, open))
  }
  return { count, closed: () => closed, allClosed, destroy: () => sockets.forEach((socket) => socket.destroy()) }
}

/** A self-signed certificate for localhost, made at test time. */
export const testCertificate = (): { readonly key: Buffer; readonly cert: Buffer } => {
  const dir = mkdtempSync(Path.join(tmpdir(), "effect-graceful-tls-"))
  execFileSync("/usr/bin/openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", Path.join(dir, "key.pem"), "-out", Path.join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=localhost"
  ], { stdio: "ignore" })
  const pair = { key: readFileSync(Path.join(dir, "key.pem")), cert: readFileSync(Path.join(dir, "cert.pem")) }
  rmSync(dir, { recursive: true, force: true })
  return pair
}

export interface Stream2 {
  readonly status: number | undefined
  readonly body: string
  readonly at: number
  /** The stream's RST_STREAM code: 0 when it completed, 8 (CANCEL) when cut. */
  readonly rstCode: number
  readonly error?: string | undefined
}

/** One HTTP/2 request on `session`; resolves when its stream closes, never rejects. */
export const request2 = (session: Http2.ClientHttp2Session, path: string): Promise<Stream2> =>
  new Promise((resolve) => {
    const stream = session.request({ ":path": path })
    let status: number | undefined
    let body = ""
    let error: string | undefined
    stream.setEncoding("utf8")
    stream.on("response", (headers) => status = Number(headers[":status"]))
    stream.on("data", (chunk: string) => body += chunk)
    stream.on("error", (e) => error = e.message)
    stream.on("close", () => resolve({ status, body, at: performance.now(), rstCode: stream.rstCode ?? 0, error }))
  })

/**
 * Runs `layer` through the shutdown sequence on a fresh quit event, as
 * `Main.runMain` would, and returns the fiber that ends with the report.
 */
export const launch = <E>(layer: Layer.Layer<never, E, Quit.Quit>) =>
  Effect.forkChild(Shutdown.run(Shutdown.launch(layer)), { startImmediately: true })

/** Completes when the phase is (or becomes) `phase`. */
export const awaitPhase = (phase: Quit.Phase) =>
  Quit.phases.pipe(Stream.filter((change) => change.phase === phase), Stream.take(1), Stream.runDrain)

/** Fires the quit event and returns performance.now() at that moment. */
export const fire = Effect.sync(() => performance.now()).pipe(Effect.tap(Quit.fire("test")))

/**
 * Runs `effect` on a fresh quit event (phase `starting`, as under
 * `Main.runMain`) and a metric registry of its own.
 */
export const withQuit = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: Parameters<typeof Quit.layer>[0] = {},
  config: Parameters<typeof Quit.layer>[1] = { phase: "starting" }
) => Effect.provide(effect, Quit.layer(options, config)).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))

/** A gauge's value or a counter's count, by id and attributes. */
export const metric = (id: string, attributes: Record<string, string>) =>
  Effect.map(Metric.snapshot, (snapshots) => {
    const found = snapshots.find((s) => s.id === id && JSON.stringify(s.attributes) === JSON.stringify(attributes))
    return found?.type === "Gauge" ? found.state.value : found?.type === "Counter" ? found.state.count : undefined
  })

/** The report's row for `name`. */
export const row = (report: Report.Report, name: string) => {
  const found = report.rows.find((r) => r.name === name)
  if (found === undefined) throw new Error(`no row ${name} in ${JSON.stringify(report.rows)}`)
  return found
}

/** A promise and the function that resolves it, for "the handler has started". */
export const signal = () => {
  let resolve: () => void = () => {}
  const promise = new Promise<void>((r) => resolve = r)
  return { promise, resolve }
}

/** Resolves with performance.now() when `server` emits `close`. */
export const closedAt = (server: Net.Server) =>
  new Promise<number>((resolve) => server.once("close", () => resolve(performance.now())))

/**
 * The shape of most drain tests: launch `layer`; once it runs, `begin` starts
 * a client and says when the server has started on it; fire the quit event
 * then; wait for the client's end and the report.
 */
export const drainDuring = <E, A>(
  layer: Layer.Layer<never, E, Quit.Quit>,
  begin: () => { readonly started: Promise<unknown>; readonly done: Promise<A> }
) =>
  Effect.gen(function*() {
    const run = yield* launch(layer)
    yield* awaitPhase("running")
    const client = begin()
    yield* Effect.promise(() => client.started)
    const firedAt = yield* fire
    const result = yield* Effect.promise(() => client.done)
    const report = yield* Fiber.join(run)
    return { firedAt, result, report }
  })
