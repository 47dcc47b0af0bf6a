/**
 * What the quit event is, to every component and to user code: its phases,
 * its reasons, the deadlines fixed when it fires, and the service's members.
 * The machinery behind them is `quit.ts`.
 *
 * @internal
 */
import { Context, type Effect, type Stream } from "effect"
import type { Options } from "./options.ts"

/** @internal */
export type Phase = "starting" | "running" | "draining" | "stopping" | "stopped"

/** @internal */
export interface PhaseChange {
  readonly phase: Phase
  /**
   * Epoch milliseconds on Effect's `Clock` (so `TestClock` in tests): the wall
   * clock when the quit event was made, advanced by the monotonic clock.
   */
  readonly at: number
}

/** @internal */
export type Reason =
  | { readonly _tag: "Signal"; readonly signal: NodeJS.Signals }
  | { readonly _tag: "Requested"; readonly reason: string }
  | { readonly _tag: "Failure"; readonly reason: string; readonly error: unknown }
  | { readonly _tag: "Completed" }
  | { readonly _tag: "Released" }

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
  }
}

/**
 * The instants fixed when the quit event fires, in epoch milliseconds of
 * Effect's `Clock`: every component reads the same ones, so that timeouts
 * never add up along the layer graph.
 *
 * @internal
 */
export interface Deadlines {
  /** The quit event. */
  readonly fired: number
  /** The end of the drain delay: listeners close, phase `stopping`. `fired` when it fired while starting. */
  readonly stopping: number
  /** The drain deadline: units still in flight are cut, in every group. */
  readonly drain: number
  /** The close deadline: closers still running are abandoned. */
  readonly close: number
  /** The shutdown deadline: `Main.runMain` exits, whatever is still open. */
  readonly shutdown: number
}

/** A deadline by the name of the moment it ends. @internal */
export type Deadline = Exclude<keyof Deadlines, "fired">

/**
 * What the quit event promises to every component and to user code. The
 * public `Quit` module documents the same members as functions.
 *
 * @internal
 */
export interface Service {
  /** The resolved options (environment over code over defaults, then the budget rule). */
  readonly options: Options
  /** The current phase and when it began. Phases only move forward. */
  readonly phase: PhaseChange
  /** Every phase reached so far, in order. */
  readonly history: ReadonlyArray<PhaseChange>
  /** The current phase, then every change, until `stopped`. */
  readonly phases: Stream.Stream<PhaseChange>
  /** Whether the quit event has fired. Also true once the program's layers are being released. */
  readonly hasFired: () => boolean
  /** Completes with the reason when the quit event fires, at once if it has. */
  readonly fired: Effect.Effect<Reason>
  /** Why it fired; `undefined` before. */
  readonly reason: Reason | undefined
  /** Fires once (true); later calls are harmless (false) and keep the first reason. */
  readonly fire: (reason: Reason) => boolean
  /** The instants fixed when it fired; `undefined` before. */
  readonly deadlines: Deadlines | undefined
}

/** @internal */
export class Quit extends Context.Service<Quit, Service>()("effect-graceful/Quit") {}

