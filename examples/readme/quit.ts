import { Effect, Layer } from "effect"
import { Quit } from "effect-graceful"

declare const sendReceipt: (order: string) => Effect.Effect<void>
declare const legacyApp: { onShutdown(hook: () => void): void }

// A unit of work outside any server or worker: counted in flight while it runs, waited for
// at shutdown, cut at the drain deadline.
export const receipt = (order: string) => sendReceipt(order).pipe(Quit.track("receipts"), Effect.forkDetach)

// The quit event fired from code, and from a plain callback outside Effect.
export const adminShutdown = Quit.fire("admin requested a shutdown")
export const Bridge = Layer.effectDiscard(
  Effect.map(Quit.trigger, (fire) => legacyApp.onShutdown(() => fire("the legacy app shut down")))
)

// What is left until the close deadline, for a client's own close(timeout).
export const closeBudget = Quit.timeLeft("close")
