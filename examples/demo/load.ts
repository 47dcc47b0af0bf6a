/**
 * Load for the demo: HTTP clients on keep-alive connections and gRPC clients,
 * each in a loop, recording when every request was sent, when it ended and
 * how. Plain Node code on purpose: the clients are not the library.
 */
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { Agent, request } from "node:http"
import type { Socket } from "node:net"
import { fileURLToPath } from "node:url"

/** How a request ended. `refused`: no connection could be made (the listener was closed). */
export type Outcome = "ok" | "refused" | "reset" | "failed"

export interface Sample {
  readonly kind: "http" | "grpc"
  readonly sentAt: number
  readonly endedAt: number
  readonly outcome: Outcome
  readonly detail: string
}

export interface Load {
  readonly samples: Array<Sample>
  /** How many HTTP connections the clients have opened so far. */
  readonly connections: () => number
  /** Stops the loops; resolves when every request has ended. */
  readonly stop: () => Promise<void>
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const randomWork = (maxMs: number) => Math.floor(Math.random() * maxMs)

const httpGet = (agent: Agent, port: number, path: string, sockets: Set<Socket>) =>
  new Promise<{ outcome: Outcome; detail: string }>((resolve) => {
    const sent = request({ host: "127.0.0.1", port, path, agent }, (response) => {
      response.resume()
      response.on("end", () =>
        resolve(
          response.statusCode === 200
            ? { outcome: "ok", detail: "200" }
            : { outcome: "failed", detail: String(response.statusCode) }
        ))
      response.on("error", (error) => resolve({ outcome: "reset", detail: error.message }))
    }).on("error", (error: NodeJS.ErrnoException) =>
      resolve(
        error.code === "ECONNREFUSED"
          ? { outcome: "refused", detail: "ECONNREFUSED" }
          : { outcome: error.code === "ECONNRESET" ? "reset" : "failed", detail: error.code ?? error.message }
      )
    )
    sent.on("socket", (socket) => sockets.add(socket))
    sent.end()
  })

const proto = fileURLToPath(new URL("../proto/work.proto", import.meta.url))

interface WorkClient extends grpc.Client {
  Work(request: { ms: number }, callback: (error: grpc.ServiceError | null) => void): grpc.ClientUnaryCall
  Count(request: { n: number; every_ms: number }): grpc.ClientReadableStream<{ n: number; last: boolean }>
}

/** A client of the example's gRPC service. */
export const workClient = (port: number): WorkClient => {
  const definition = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { keepCase: true }))
  const example = definition["example"] as grpc.GrpcObject
  const Work = example["Work"] as grpc.ServiceClientConstructor
  return new Work(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as WorkClient
}

/** One Work call: how it ended (`detail` is the gRPC status name). */
export const grpcWork = (client: WorkClient, ms: number) =>
  new Promise<{ outcome: Outcome; detail: string }>((resolve) => {
    client.Work({ ms }, (error) => {
      if (error === null) return resolve({ outcome: "ok", detail: "OK" })
      const name = grpc.status[error.code] ?? String(error.code)
      // UNAVAILABLE with no connection: the listener is closed (GOAWAY received).
      resolve({ outcome: error.code === grpc.status.UNAVAILABLE ? "refused" : "failed", detail: name })
    })
  })

/**
 * Starts `http` HTTP loops (alternating between the Effect API and the Express
 * app) and `grpc` gRPC loops, each sending a request of up to `maxWorkMs`
 * as soon as its previous one ended. After a refusal a loop waits a little,
 * as a client would before retrying elsewhere.
 */
export const startLoad = (
  ports: { readonly api: number; readonly web: number; readonly grpc: number },
  options: { readonly http: number; readonly grpc: number; readonly maxWorkMs: number }
): Load => {
  const samples: Array<Sample> = []
  let running = true
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, options.http) })
  const sockets = new Set<Socket>()
  const client = workClient(ports.grpc)
  const loop = async (kind: "http" | "grpc", i: number) => {
    while (running) {
      const sentAt = performance.now()
      const ms = randomWork(options.maxWorkMs)
      const result = kind === "grpc"
        ? await grpcWork(client, ms)
        : await httpGet(agent, i % 2 === 0 ? ports.api : ports.web, `/work?ms=${ms}`, sockets)
      samples.push({ kind, sentAt, endedAt: performance.now(), ...result })
      if (result.outcome !== "ok") await pause(25)
    }
  }
  const loops = [
    ...Array.from({ length: options.http }, (_, i) => loop("http", i)),
    ...Array.from({ length: options.grpc }, (_, i) => loop("grpc", i))
  ]
  return {
    samples,
    connections: () => sockets.size,
    stop: async () => {
      running = false
      await Promise.all(loops)
      agent.destroy()
      client.close()
    }
  }
}
