/**
 * A real grpc-js client for the demo service and grpc.health.v1, with each
 * call's outcome (messages, status, headers, trailers, when it ended) as a
 * Promise, so tests assert on what a client actually receives.
 */
import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import * as health from "grpc-health-check"
import type { EventEmitter } from "node:events"
import { fileURLToPath } from "node:url"

export const demoProto = fileURLToPath(new URL("../fixtures/grpc/demo.proto", import.meta.url))

const loaded = protoLoader.loadSync(demoProto, { keepCase: true, longs: String, defaults: true })
const demo = loaded["demo.Demo"]
if (demo === undefined || "format" in demo) throw new Error("demo.Demo missing from demo.proto")

interface Method {
  readonly path: string
  readonly requestSerialize: (value: object) => Buffer
  readonly responseDeserialize: (bytes: Buffer) => object
}

const method = (name: string): Method => {
  const found = demo[name]
  if (found === undefined) throw new Error(`demo.Demo has no method ${name}`)
  return found
}

const healthMethod = (name: "Check" | "Watch"): Method => {
  const found = health.service[name]
  if (found === undefined) throw new Error(`grpc.health.v1 has no method ${name}`)
  return found
}

export interface Outcome {
  readonly messages: ReadonlyArray<Record<string, unknown>>
  readonly status: grpc.StatusObject
  readonly headers: grpc.Metadata | undefined
  /** performance.now() when the status arrived. */
  readonly endedAt: number
}

export interface Options {
  readonly metadata?: grpc.Metadata
  readonly deadlineMs?: number
}

/** Collects what one call receives; the Promise settles on its status. */
const outcome = (call: EventEmitter, messages: Array<Record<string, unknown>>): Promise<Outcome> =>
  new Promise((resolve) => {
    let headers: grpc.Metadata | undefined
    call.on("metadata", (metadata: grpc.Metadata) => headers = metadata)
    // A failed stream also emits `error`; the status says it all.
    call.on("error", () => {})
    call.on("status", (status: grpc.StatusObject) =>
      // Unary callbacks run just before `status`; let them record the message.
      queueMicrotask(() => resolve({ messages, status, headers, endedAt: performance.now() })))
  })

const callOptions = (options: Options): grpc.CallOptions =>
  options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs }

const asRecord = (value: object): Record<string, unknown> => ({ ...value })

export class DemoClient {
  readonly client: grpc.Client

  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure())
  }

  unary(name: string | Method, request: object, options: Options = {}) {
    const m = typeof name === "string" ? method(name) : name
    const messages: Array<Record<string, unknown>> = []
    const call = this.client.makeUnaryRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      request,
      options.metadata ?? new grpc.Metadata(),
      callOptions(options),
      (_error, value) => value !== undefined && messages.push(asRecord(value))
    )
    return { call, done: outcome(call, messages) }
  }

  serverStream(name: string | Method, request: object, options: Options = {}) {
    const path = typeof name === "string" ? method(name) : name
    const messages: Array<Record<string, unknown>> = []
    const call = this.client.makeServerStreamRequest(
      path.path,
      path.requestSerialize,
      path.responseDeserialize,
      request,
      options.metadata ?? new grpc.Metadata(),
      callOptions(options)
    )
    call.on("data", (message: object) => messages.push(asRecord(message)))
    return { call, messages, done: outcome(call, messages) }
  }

  clientStream(name: string, requests: ReadonlyArray<object>) {
    const m = method(name)
    const messages: Array<Record<string, unknown>> = []
    const call = this.client.makeClientStreamRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      new grpc.Metadata(),
      {},
      (_error, value) => value !== undefined && messages.push(asRecord(value))
    )
    for (const request of requests) call.write(request)
    call.end()
    return { call, done: outcome(call, messages) }
  }

  bidi(name: string, requests: ReadonlyArray<object>) {
    const m = method(name)
    const messages: Array<Record<string, unknown>> = []
    const call = this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), {})
    call.on("data", (message: object) => messages.push(asRecord(message)))
    for (const request of requests) call.write(request)
    call.end()
    return { call, done: outcome(call, messages) }
  }

  /** grpc.health.v1 Check: the status, or the gRPC error code. */
  async check(service: string): Promise<string> {
    const m = healthMethod("Check")
    const result = await this.unary(m, { service }).done
    return result.status.code === grpc.status.OK ? String(result.messages[0]?.["status"]) : grpc.status[result.status.code]
  }

  /** grpc.health.v1 Watch: the statuses as they arrive. */
  watch(service: string) {
    return this.serverStream(healthMethod("Watch"), { service })
  }

  close() {
    this.client.close()
  }
}
