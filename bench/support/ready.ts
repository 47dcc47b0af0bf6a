/**
 * In a benchmark server: the `READY <port>` line that `startServer`
 * (child.ts) waits for — printed when a plain server listens, or, under
 * `Main.runMain`, once the program is running (every layer built), so that
 * the bench never loads or signals a server still starting.
 */
import { Effect, Layer, Stream } from "effect"
import type { Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Quit } from "../../src/index.ts"

/** Prints `READY <port>` for a listening server. */
export const ready = (server: Server): void => console.log(`READY ${(server.address() as AddressInfo).port}`)

/** A layer that prints `READY <port>` once the quit event's phase is `running`. */
export const readyWhenRunning = (server: Server): Layer.Layer<never, never, Quit.Quit> =>
  Layer.effectDiscard(Quit.phases.pipe(
    Stream.filter((change) => change.phase === "running"),
    Stream.take(1),
    Stream.runDrain,
    Effect.andThen(Effect.sync(() => ready(server))),
    Effect.forkScoped
  ))
