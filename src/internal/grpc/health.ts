/**
 * The standard `grpc.health.v1` service of a graceful server, from
 * `grpc-health-check`, with statuses that follow the quit event.
 *
 * @internal
 */
import type * as grpc from "@grpc/grpc-js"
import { HealthImplementation, type ServingStatus } from "grpc-health-check"

// `grpc-health-check` types a Watch handler as any kind of handler; it is
// server-streaming by its proto.
const isServerStreaming = (
  handler: grpc.UntypedHandleCall
): handler is grpc.handleServerStreamingCall<unknown, unknown> => handler.length === 1
const isUnary = (handler: grpc.UntypedHandleCall): handler is grpc.handleUnaryCall<unknown, unknown> => handler.length === 2

const isServing = (value: unknown): boolean =>
  typeof value === "object" && value !== null && "status" in value && value.status === "SERVING"

// `ipv4:10.0.0.5:43210` → `10.0.0.5`: a prober's calls come from ever new ports.
const peerAddress = (peer: string): string => {
  const address = peer.replace(/^ipv[46]:/, "")
  const port = address.lastIndexOf(":")
  return (port === -1 ? address : address.slice(0, port)).replace(/^\[(.*)\]$/, "$1")
}

/**
 * The standard `grpc.health.v1` service, with statuses that follow the server:
 * NOT_SERVING while starting, SERVING while running (unless a service was set
 * otherwise) and ready — every readiness check passing, the program not
 * marked not ready, asked afresh on every Check — and NOT_SERVING for good
 * once the quit event fires.
 *
 * It also keeps the open Watch streams: they would hold their connections —
 * and so the graceful close — open forever, so the server ends them with OK
 * when it stops, after they have carried the NOT_SERVING change.
 *
 * @internal
 */
export class Health {
  readonly #implementation: HealthImplementation
  readonly #current = new Map<string, ServingStatus>()
  readonly #wanted = new Map<string, "SERVING" | "NOT_SERVING">()
  readonly #watches = new Set<grpc.ServerWritableStream<unknown, unknown>>()
  #state: "starting" | "running" | "quit" = "starting"
  #ready = true
  /** Asked before every Check is answered: is the program ready beyond its phase. */
  readonly #readiness: (then: (ready: boolean) => void) => void

  /** Hears each Check answered: who asked (`ipv4:10.0.0.5`), and whether the answer was SERVING. */
  readonly #checked: (peer: string, serving: boolean) => void

  constructor(
    services: ReadonlyArray<string>,
    readiness: (then: (ready: boolean) => void) => void,
    checked: (peer: string, serving: boolean) => void = () => {}
  ) {
    this.#readiness = readiness
    this.#checked = checked
    // "" is the whole server, as grpc.health.v1 defines it.
    for (const service of ["", ...services]) this.#current.set(service, "NOT_SERVING")
    this.#implementation = new HealthImplementation(Object.fromEntries(this.#current))
  }

  addTo(server: grpc.Server): void {
    this.#implementation.addToServer({
      addService: (definition, implementation) => {
        const watch = implementation["watch"]
        const check = implementation["check"]
        if (watch === undefined || !isServerStreaming(watch) || check === undefined || !isUnary(check)) {
          return server.addService(definition, implementation)
        }
        server.addService(definition, {
          ...implementation,
          check: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
            this.refresh(() =>
              check(call, (error, value) => {
                callback(error, value)
                this.#checked(peerAddress(call.getPeer()), isServing(value))
              })
            ),
          watch: (stream: grpc.ServerWritableStream<unknown, unknown>) => {
            this.#watches.add(stream)
            stream.once("cancelled", () => this.#watches.delete(stream))
            watch(stream)
          }
        })
      }
    })
  }

  /** Asks the program's readiness, applies it, then calls `then`. */
  refresh(then: () => void = () => {}): void {
    if (this.#state !== "running") return then()
    this.#readiness((ready) => {
      this.#ready = ready
      this.#apply()
      then()
    })
  }

  running(): void {
    if (this.#state !== "starting") return
    this.#state = "running"
    this.#apply()
  }

  quit(): void {
    this.#state = "quit"
    this.#apply()
  }

  set(service: string, status: "SERVING" | "NOT_SERVING"): void {
    this.#wanted.set(service, status)
    if (!this.#current.has(service)) {
      this.#current.set(service, "NOT_SERVING")
      this.#implementation.setStatus(service, "NOT_SERVING")
    }
    this.#apply()
  }

  endWatches(): void {
    for (const stream of this.#watches) stream.end()
    this.#watches.clear()
  }

  #apply(): void {
    for (const [service, current] of this.#current) {
      const status = this.#state === "running" && this.#ready ? this.#wanted.get(service) ?? "SERVING" : "NOT_SERVING"
      // Watchers are told on every set; tell them only of changes.
      if (status === current) continue
      this.#current.set(service, status)
      this.#implementation.setStatus(service, status)
    }
  }
}
