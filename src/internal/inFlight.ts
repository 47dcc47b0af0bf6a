/**
 * The in-flight counter behind every group: a count that wakes its waiters the
 * moment it reaches zero, and the set of fibers running counted units so that
 * the drain timeout can cut them.
 *
 * @internal
 */
import type { Context, Fiber } from "effect"
import { Effect, Latch, Metric } from "effect"
import { constVoid } from "effect/Function"

// The series are read from the counter when metrics are collected, not
// updated on every unit: counting stays a few integer operations per unit,
// whatever the number of requests or jobs. A later group of the same name
// takes the series over.
const register = (inFlight: InFlight, context: Context.Context<never>): void => {
  const attributes = { group: inFlight.name }
  const counter = (name: string, description: string, read: () => number) =>
    Metric.registerUnsafe(Metric.counter(name, { description, incremental: true, attributes }), context, {
      get: () => ({ count: read(), incremental: true }),
      update: constVoid,
      modify: constVoid
    })
  Metric.registerUnsafe(
    Metric.gauge("effect_graceful_in_flight", { description: "Units of work in flight, per group", attributes }),
    context,
    { get: () => ({ value: inFlight.count }), update: constVoid, modify: constVoid }
  )
  counter("effect_graceful_units_started_total", "Units of work started, per group", () => inFlight.started)
  counter("effect_graceful_units_cut_total", "Units of work cut at the drain timeout, per group", () => inFlight.cutTotal)
}

/** @internal */
export class InFlight {
  readonly name: string
  #count = 0
  #started = 0
  // Open exactly when the count is zero: awaiting it is the whole of "wait
  // until idle", with no polling.
  readonly #idle = Latch.makeUnsafe(true)
  // A fiber may run several counted units of one group at once (nested
  // `track`), so we keep a multiplicity per fiber.
  readonly #fibers = new Map<Fiber.Fiber<unknown, unknown>, number>()
  #cutTotal = 0

  constructor(name: string, context: Context.Context<never>) {
    this.name = name
    register(this, context)
  }

  get count(): number {
    return this.#count
  }

  get started(): number {
    return this.#started
  }

  get cutTotal(): number {
    return this.#cutTotal
  }

  /** Counts one unit; the returned release is idempotent. */
  enter(): () => void {
    this.#count++
    this.#started++
    if (this.#count === 1) this.#idle.closeUnsafe()
    let released = false
    return () => {
      if (released) return
      released = true
      this.#count--
      if (this.#count === 0) this.#idle.openUnsafe()
    }
  }

  /** Completes the moment the count is zero (at once if it already is). */
  get awaitIdle(): Effect.Effect<void> {
    return this.#idle.await
  }

  track<A, E, R>(unit: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    // Counting starts and the release is installed without a gap an
    // interruption could fall into.
    return Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => {
        const release = this.enter()
        this.#fibers.set(fiber, (this.#fibers.get(fiber) ?? 0) + 1)
        return restore(unit).pipe(
          Effect.onExit(() =>
            Effect.sync(() => {
              const n = (this.#fibers.get(fiber) ?? 1) - 1
              if (n === 0) this.#fibers.delete(fiber)
              else this.#fibers.set(fiber, n)
              release()
            })
          )
        )
      })
    )
  }

  /**
   * Interrupts every fiber running a counted unit and returns how many units
   * were in flight. Units counted with `enter` cannot be interrupted from here;
   * their owner cuts them (destroys the socket, cancels the call).
   */
  cut(): number {
    const inFlight = this.#count
    for (const fiber of this.#fibers.keys()) fiber.interruptUnsafe()
    this.#cutTotal += inFlight
    return inFlight
  }
}
