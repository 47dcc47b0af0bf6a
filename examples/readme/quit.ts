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

// GracefulStop from code, and from a plain callback outside Effect.
export const adminShutdown = Quit.fire("admin requested a shutdown")
export const bridge = Effect.gen(function*() {
  const stop = yield* Quit.trigger
  process.once("message", (message) => message === "shutdown" && stop("the parent process asked"))
})

// AddGoroutine/DoneGoroutine, structurally: counted for exactly as long as it runs.
export const sendReceipt = Effect.log("receipt sent").pipe(Quit.track("receipts"), Effect.forkDetach)
export const receiptsInFlight = Quit.inFlight("receipts")
export const receiptsDone = Quit.awaitIdle("receipts")
