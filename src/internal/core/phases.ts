/**
 * The phases of a quit event — `starting → running → draining → stopping →
 * stopped` — moving forward only, with when each began; a stream of the
 * changes, and a wait for each phase.
 *
 * @internal
 */
import { Deferred, Effect, Exit, PubSub, Stream } from "effect"

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

const ORDER: { readonly [P in Phase]: number } = { starting: 0, running: 1, draining: 2, stopping: 3, stopped: 4 }
const ALL = Object.keys(ORDER) as ReadonlyArray<Phase>

/** Whether `phase` is `than` or later. @internal */
export const isAtLeast = (phase: Phase, than: Phase): boolean => ORDER[phase] >= ORDER[than]

/** @internal */
export class Phases {
  readonly #history: Array<PhaseChange>
  readonly #changes: PubSub.PubSub<PhaseChange>
  /** One per phase, completed when it is reached or passed. */
  readonly #reached = new Map<Phase, Deferred.Deferred<void>>(ALL.map((phase) => [phase, Deferred.makeUnsafe<void>()]))

  constructor(initial: PhaseChange, changes: PubSub.PubSub<PhaseChange>) {
    this.#history = []
    this.#changes = changes
    this.advance(initial.phase, initial.at)
  }

  /** The phase now, and when it began. */
  get current(): PhaseChange {
    return this.#history[this.#history.length - 1] ?? { phase: "starting", at: 0 }
  }

  /** Every phase reached so far, in order. */
  get history(): ReadonlyArray<PhaseChange> {
    return this.#history
  }

  /** The current phase, then every change. */
  get changes(): Stream.Stream<PhaseChange> {
    return Stream.fromPubSub(this.#changes)
  }

  /** Moves to `phase` at `at` if it is later than the current one; false if not (a late `running` after the quit event). */
  advance(phase: Phase, at: number): boolean {
    const current = this.#history[this.#history.length - 1]
    if (current !== undefined && ORDER[phase] <= ORDER[current.phase]) return false
    const change = { phase, at }
    this.#history.push(change)
    PubSub.publishUnsafe(this.#changes, change)
    for (const [p, reached] of this.#reached) if (ORDER[p] <= ORDER[phase]) Deferred.doneUnsafe(reached, Exit.void)
    return true
  }

  /** When `phase` began, if it has. */
  at(phase: Phase): number | undefined {
    return this.#history.find((change) => change.phase === phase)?.at
  }

  /** Completes when `phase` is reached or passed (a program that stops while starting passes `running`). */
  reached(phase: Phase): Effect.Effect<void> {
    const reached = this.#reached.get(phase)
    return reached === undefined ? Effect.void : Deferred.await(reached)
  }
}
