import { Effect, Queue } from "effect"
import { Quit } from "effect-graceful"

// Go's `for !quit.HasFired() { … }`
export const poller = Effect.gen(function*() {
  while (!(yield* Quit.hasFired)) {
    yield* Effect.sleep("1 second")
  }
})

// Go's `select { case item := <-items: … case <-quit.Done(): … }`
export const takeOrQuit = (items: Queue.Queue<string>) =>
  Effect.raceFirst(Effect.map(Queue.take(items), (item) => `took ${item}`), Effect.as(Quit.fired, "quit"))

// GracefulStop from code.
export const adminShutdown = Quit.fire("admin requested a shutdown")

// AddGoroutine/DoneGoroutine, structurally: counted for exactly as long as it runs.
export const sendReceipt = Effect.log("receipt sent").pipe(Quit.track("receipts"), Effect.forkDetach)
export const receiptsInFlight = Quit.inFlight("receipts")
export const receiptsDone = Quit.awaitIdle("receipts")

// RegisterCloser and RegisterStopFunc, for code that is not a layer.
declare const tracer: { shutdown(): Promise<void> }
declare const legacyServer: { stopAccepting(): void }
export const registrations = Effect.all([
  Quit.registerCloser("tracer", () => tracer.shutdown(), { timeout: "2 seconds" }),
  Quit.registerStopFunc("legacy server", () => legacyServer.stopAccepting())
])
