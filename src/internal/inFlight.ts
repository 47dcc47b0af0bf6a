/**
 * The in-flight counter behind every group: a count that wakes its waiters the
 * moment it reaches zero, and the set of fibers running counted units so that
 * the drain timeout can cut them.
 *
 * @internal
 */
import type { Context, Fiber } from "effect"
import { Effect, Latch, Metric } from "effect"

// Attributes are given at creation rather than with `Metric.withAttributes`:
// each unit updates these on its hot path, and the wrapper costs ~3x per update.
const metrics = (group: string) => {
  const attributes = { group }
  return {
    gauge: Metric.gauge("effect_graceful_in_flight", { description: "Units of work in flight, per group", attributes }),
    started: Metric.counter("effect_graceful_units_started_total", {
      description: "Units of work started, per group",
      incremental: true,
      attributes
    }),
    cut: Metric.counter("effect_graceful_units_cut_total", {
      description: "Units of work cut at the drain timeout, per group",
      incremental: true,
      attributes
    })
  }
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
  readonly #context: Context.Context<never>
  readonly #gauge: Metric.Metric<number, Metric.GaugeState<number>>
  readonly #started_: Metric.Metric<number, Metric.CounterState<number>>
  readonly #cut: Metric.Metric<number, Metric.CounterState<number>>

  constructor(name: string, context: Context.Context<never>) {
    this.name = name
    this.#context = context
    const { cut, gauge, started } = metrics(name)
    this.#gauge = gauge
    this.#started_ = started
    this.#cut = cut
  }

  get count(): number {
    return this.#count
  }

  get started(): number {
    return this.#started
  }

  /** Counts one unit; the returned release is idempotent. */
  enter(): () => void {
    this.#count++
    this.#started++
    if (this.#count === 1) this.#idle.closeUnsafe()
    this.#gauge.updateUnsafe(this.#count, this.#context)
    this.#started_.updateUnsafe(1, this.#context)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#count--
      this.#gauge.updateUnsafe(this.#count, this.#context)
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
    if (inFlight > 0) this.#cut.updateUnsafe(inFlight, this.#context)
    return inFlight
  }
}
