/**
 * The machinery behind `Worker`: a pool of worker fibers that wait for items
 * and run each as a counted unit.
 *
 * A worker fiber is uninterruptible but for two kinds of region: its waits
 * (a take, a pause, a backoff) and its units. Stopping intake interrupts only
 * the workers that wait — one that waits stops at once; one that has an item
 * in hand (even if it received it a moment before) is outside any wait, and
 * still runs it. The cut interrupts only the workers in a unit. So a unit
 * that has started completes unless the drain deadline cuts it — and no unit
 * needs a fiber of its own: a unit costs a few counter updates.
 *
 * The pool keeps account of its units itself (a tally of the group's
 * counter), and hands them over to be counted one by one only once somebody
 * waits for them: the drain.
 *
 * @internal
 */
import type { Context, Fiber } from "effect"
import { Effect, Exit, Latch, Metric } from "effect"
import { type InFlight, Tally } from "../core/inFlight.ts"

const runningGauge = Metric.gauge("effect_graceful_workers_running", {
  description: "Worker fibers running, per worker name"
})
const failuresCounter = Metric.counter("effect_graceful_unit_failures_total", {
  description: "Units that failed (each attempt), per worker name",
  incremental: true
})

/** One worker fiber, and where it is. @internal */
export class Slot {
  readonly fiber: Fiber.Fiber<unknown, unknown>
  waiting = false
  inUnit = false
  // Its unit is one the group's counter counts (after the hand-over).
  counted = false
  // Its unit was interrupted by a cut.
  cut = false

  constructor(fiber: Fiber.Fiber<unknown, unknown>) {
    this.fiber = fiber
  }
}

/**
 * Who is running, where, and who could still pick up an item: the counts the
 * drain waits on. Every count wakes its waiters through a latch made only
 * when somebody waits; nothing polls.
 *
 * @internal
 */
export class Pool {
  readonly name: string
  readonly #slots = new Set<Slot>()
  // Live workers not inside a unit: waiting, or holding an item they have
  // not yet begun. Stopping is settled when this reaches zero.
  #outside = 0
  #settled: Latch.Latch | undefined
  readonly #stopped = Latch.makeUnsafe(true)
  #halted = false
  #inUnit = 0
  #inFlight: InFlight | undefined
  // Units are tallied (read off the busy workers) until somebody waits for
  // them or cuts them; then counted one by one.
  readonly #tally = new Tally<Slot>({
    busy: () => this.#busy(),
    busyCount: () => this.#inUnit,
    handOver: (slot, counter) => {
      counter.add()
      slot.counted = true
    },
    cut: () => this.#cut()
  })
  readonly #context: Context.Context<never>
  readonly #gauge: Metric.Metric<number, Metric.GaugeState<number>>
  readonly failures: Metric.Metric<number, Metric.CounterState<number>>

  // The source's own halt: it stops fetching and hands back what it fetched ahead.
  readonly #onHalt: () => void

  constructor(name: string, context: Context.Context<never>, onHalt: () => void = () => {}) {
    this.name = name
    this.#onHalt = onHalt
    this.#context = context
    this.#gauge = Metric.withAttributes(runningGauge, { worker: name })
    this.failures = Metric.withAttributes(failuresCounter, { worker: name })
  }

  get running(): number {
    return this.#slots.size
  }

  get awaitStopped(): Effect.Effect<void> {
    return this.#stopped.await
  }

  /**
   * The group's counter reads the units off the pool until somebody waits for
   * them; then they are handed over, and counted one by one from then on. A
   * cut interrupts the workers in a unit.
   */
  count(inFlight: InFlight): void {
    this.#inFlight = inFlight
    this.#tally.attach(inFlight)
  }

  *#busy(): Iterable<Slot> {
    for (const slot of this.#slots) if (slot.inUnit) yield slot
  }

  #cut(): { readonly count: number; readonly interrupt: () => void } {
    const busy: Array<Slot> = []
    for (const slot of this.#slots) {
      if (!slot.inUnit || slot.cut) continue
      slot.cut = true
      busy.push(slot)
    }
    return { count: busy.length, interrupt: () => busy.forEach((slot) => slot.fiber.interruptUnsafe()) }
  }

  join(fiber: Fiber.Fiber<unknown, unknown>): Slot {
    const slot = new Slot(fiber)
    this.#slots.add(slot)
    if (this.#slots.size === 1) this.#stopped.closeUnsafe()
    this.#gauge.updateUnsafe(this.#slots.size, this.#context)
    this.#outside++
    return slot
  }

  leave(slot: Slot): void {
    this.#slots.delete(slot)
    this.#gauge.updateUnsafe(this.#slots.size, this.#context)
    this.#leaveOutside()
    if (this.#slots.size === 0) this.#stopped.openUnsafe()
  }

  // The hot path: a few counter updates per unit, no allocation.
  enterUnit(slot: Slot): void {
    slot.inUnit = true
    this.#inUnit++
    this.#leaveOutside()
    const counter = this.#tally.start()
    if (counter !== undefined) {
      counter.add()
      slot.counted = true
    }
  }

  leaveUnit(slot: Slot): void {
    slot.inUnit = false
    slot.cut = false
    this.#inUnit--
    this.#outside++
    if (slot.counted) {
      slot.counted = false
      this.#inFlight?.done()
    }
  }

  /**
   * The unit of `slot` has ended and its next begins at once, with no moment
   * outside: one more unit started, and the count never passes through zero
   * (after the halt, the drain must not see the pool idle between the two).
   */
  chainUnit(slot: Slot): void {
    const counter = this.#tally.start()
    if (slot.counted && counter !== undefined) {
      counter.add()
      counter.done()
    }
  }

  #leaveOutside(): void {
    if (--this.#outside === 0 && this.#settled !== undefined) {
      const settled = this.#settled
      this.#settled = undefined
      settled.openUnsafe()
    }
  }

  /** True once the pool stops taking items. */
  get halted(): boolean {
    return this.#halted
  }

  /**
   * Stops intake: interrupts the workers that wait — they stop at once; busy
   * ones stop when their unit ends (they see `halted` before their next
   * wait). Idempotent.
   */
  halt(): void {
    if (this.#halted) return
    this.#halted = true
    for (const slot of this.#slots) if (slot.waiting) slot.fiber.interruptUnsafe()
    this.#onHalt()
  }

  /** Runs `effect` as a wait of `slot`'s worker: interruptible, and interrupted by `halt`. */
  wait<X>(slot: Slot, effect: Effect.Effect<X, unknown>): Effect.Effect<Exit.Exit<X, unknown>> {
    return Effect.suspend(() => {
      if (this.#halted) return Effect.succeed(Exit.interrupt(slot.fiber.id))
      slot.waiting = true
      return Effect.map(Effect.exit(Effect.interruptible(effect)), (exit) => {
        slot.waiting = false
        return exit
      })
    })
  }

  /**
   * The group's `onStop`: halts, and completes when no worker is left outside
   * a unit, so that the group's count of units is final.
   */
  readonly stop: Effect.Effect<void> = Effect.suspend(() => {
    this.halt()
    if (this.#outside === 0) return Effect.void
    this.#settled ??= Latch.makeUnsafe(false)
    return this.#settled.await
  })
}
