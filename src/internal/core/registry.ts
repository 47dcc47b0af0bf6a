/**
 * One registered resource — a group, a closer, a stop function — and the row
 * of the shutdown report it becomes.
 *
 * @internal
 */
import type { Effect } from "effect"
import { Deferred, Exit } from "effect"
import type { InFlight } from "./inFlight.ts"
import type { Outcome, Row } from "./report.ts"

/** What a close body reports when it ends by itself. @internal */
export interface Closed {
  readonly outcome: "done" | "cut" | "timed out" | "failed"
  readonly detail?: string | undefined
}

/** @internal */
export class Entry {
  readonly name: string
  readonly kind: string
  readonly inFlight: InFlight | undefined
  /** Cuts what interrupting its fibers cannot (destroys sockets); run at the cut. */
  readonly onCut: Effect.Effect<void, unknown> | undefined
  /** Completed when it stops taking new work: its intake closes. */
  readonly closing = Deferred.makeUnsafe<void>()
  state: "open" | "closing" | "closed" = "open"
  closeStartedAt: number | undefined
  closedAt: number | undefined
  inFlightAtDrain: number | undefined
  inFlightAtEnd: number | undefined
  /** Units in flight when it was cut, and why; unset until then. */
  cut: { readonly count: number; readonly why: string } | undefined
  /** Completes when the cut's `onCut` has ended. */
  cutting: Effect.Effect<void> | undefined
  /** Called the moment the quit event fires, while it is registered (see `QuitImpl.onFire`). */
  onFire: (() => void) | undefined
  /** Called the moment the drain delay ends (phase `stopping`), while it is registered (see `QuitImpl.onStopping`). */
  onStopping: (() => void) | undefined
  outcome: Outcome | undefined
  detail: string | undefined

  constructor(name: string, kind: string, inFlight: InFlight | undefined, onCut: Effect.Effect<void, unknown> | undefined) {
    this.name = name
    this.kind = kind
    this.inFlight = inFlight
    this.onCut = onCut
  }

  get label(): string {
    return `${this.name} (${this.kind})`
  }

  markClosing(): void {
    Deferred.doneUnsafe(this.closing, Exit.void)
  }

  /** A row for the report; an entry not closed by now was abandoned by the exit. */
  toRow(now: number): Row {
    const closing = this.state !== "open"
    return {
      name: this.name,
      kind: this.kind,
      outcome: this.outcome ?? "abandoned",
      millis: closing ? (this.closedAt ?? now) - this.closeStartedAt! : undefined,
      inFlightAtDrain: this.inFlight === undefined ? undefined : this.inFlightAtDrain ?? this.inFlight.count,
      inFlightAtEnd: this.inFlight === undefined ? undefined : this.inFlightAtEnd ?? this.inFlight.count,
      detail: this.detail ??
        (this.state === "closing" ? "still closing at exit" : this.state === "open" ? "never began closing" : undefined)
    }
  }

  /** In words, for the log lines that say what is still open. */
  describeOpen(): string {
    const count = this.inFlight?.count ?? 0
    const state = this.state === "closing" ? "closing" : "not yet closing"
    return `${this.name} (${this.kind}, ${state}${count > 0 ? `, ${count} in flight` : ""})`
  }
}
