/**
 * What the quit event is to the rest of the program: an opaque service (the
 * public `Quit` module's functions read it), and the reasons it fires for.
 *
 * @internal
 */
import { Context } from "effect"

/** @internal */
export const TypeId: unique symbol = Symbol.for("effect-graceful/Quit")

/** @internal */
export type Reason =
  | { readonly _tag: "Signal"; readonly signal: NodeJS.Signals }
  | { readonly _tag: "Requested"; readonly reason: string }
  | { readonly _tag: "Failure"; readonly reason: string; readonly error: unknown }
  | { readonly _tag: "Completed" }
  | { readonly _tag: "Released" }
  /** A host asked the service to stop (memory pressure), and for an exit code of its own if the shutdown goes well. */
  | { readonly _tag: "Host"; readonly reason: string; readonly exitCode: number }

/** @internal */
export const describeReason = (reason: Reason): string => {
  switch (reason._tag) {
    case "Signal":
      return reason.signal
    case "Requested":
      return `requested: ${reason.reason}`
    case "Failure":
      return `failure: ${reason.reason}`
    case "Completed":
      return "program completed"
    case "Released":
      return "layers released"
    case "Host":
      return reason.reason
  }
}

/**
 * The quit event service, opaque: the public `Quit` module's functions read
 * it (`Quit.phase`, `Quit.fired`, `Quit.fire`…).
 *
 * @internal
 */
export interface Service {
  readonly [TypeId]: typeof TypeId
}

/** @internal */
export class Quit extends Context.Service<Quit, Service>()("effect-graceful/Quit") {}
