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

/**
 * The standard `grpc.health.v1` service, with statuses that follow the server:
 * NOT_SERVING while starting, SERVING while running (unless a service was set
 * otherwise), NOT_SERVING for good once the quit event fires.
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

  constructor(services: ReadonlyArray<string>) {
    // "" is the whole server, as grpc.health.v1 defines it.
    for (const service of ["", ...services]) this.#current.set(service, "NOT_SERVING")
    this.#implementation = new HealthImplementation(Object.fromEntries(this.#current))
  }

  addTo(server: grpc.Server): void {
    this.#implementation.addToServer({
      addService: (definition, implementation) => {
        const watch = implementation["watch"]
        if (watch === undefined || !isServerStreaming(watch)) return server.addService(definition, implementation)
        server.addService(definition, {
          ...implementation,
          watch: (stream: grpc.ServerWritableStream<unknown, unknown>) => {
            this.#watches.add(stream)
            stream.once("cancelled", () => this.#watches.delete(stream))
            watch(stream)
          }
        })
      }
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
      const status = this.#state === "running" ? this.#wanted.get(service) ?? "SERVING" : "NOT_SERVING"
      // Watchers are told on every set; tell them only of changes.
      if (status === current) continue
      this.#current.set(service, status)
      this.#implementation.setStatus(service, status)
    }
  }
}
