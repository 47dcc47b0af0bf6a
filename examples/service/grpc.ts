/**
 * The example's gRPC service (examples/proto/work.proto), with the standard
 * health service:
 *
 *   example.Work/Work    works `ms` milliseconds, then answers
 *   example.Work/Count   streams `n` ticks, one every `every_ms`; when the
 *                        service drains it sends a last tick and ends with OK
 */
import { status } from "@grpc/grpc-js"
import { Effect, Layer, Schedule, Stream } from "effect"
import { fileURLToPath } from "node:url"
import * as Grpc from "../../src/Grpc.ts"

type WorkApi = {
  readonly Work: { readonly request: { readonly ms: number }; readonly response: { readonly ms: number; readonly pid: number } }
  readonly Count: {
    readonly request: { readonly n: number; readonly every_ms: number }
    readonly response: { readonly n: number; readonly last: boolean }
  }
}

const proto = fileURLToPath(new URL("../proto/work.proto", import.meta.url))

const outOfRange = (details: string) => Effect.fail(new Grpc.StatusError({ code: status.INVALID_ARGUMENT, details }))

const work = Grpc.unary(({ ms }: WorkApi["Work"]["request"]) =>
  ms < 0 || ms > 60_000
    ? outOfRange("ms: expected 0 to 60000")
    : Effect.as(Effect.sleep(ms), { ms, pid: process.pid })
)

const count = Grpc.serverStream(({ every_ms, n }: WorkApi["Count"]["request"], call) =>
  Stream.suspend(() => {
    let sent = 0
    const ticks = Stream.fromSchedule(Schedule.spaced(Math.max(1, every_ms))).pipe(
      Stream.take(Math.max(0, n)),
      Stream.map(() => ({ n: ++sent, last: sent === n }))
    )
    // Draining: stop ticking and say so with a last tick, rather than be cut
    // at the drain timeout.
    const goodbye = Stream.suspend(() => sent < n ? Stream.make({ n: sent, last: true }) : Stream.empty)
    return Stream.concat(Stream.interruptWhen(ticks, call.closing), goodbye)
  })
)

export const Rpc = (port: number, host?: string, reusePort = false) =>
  Layer.unwrap(Effect.map(Grpc.loadService<WorkApi>(proto, "example.Work"), (Work) =>
    Grpc.layer({ port, host, reusePort, name: "grpc", services: [Grpc.service(Work, { Work: work, Count: count })] })))
