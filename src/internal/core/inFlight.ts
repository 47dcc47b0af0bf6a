/**
 * The in-flight counter behind every group: a count that wakes its waiters the
 * moment it reaches zero, and the set of fibers running counted units so that
 * the drain deadline can cut them.
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
const register = (inFlight: InFlight, context: Context.Context<never>): ReadonlyArray<Metric.Registration> => {
  const attributes = { group: inFlight.name }
  const counter = (name: string, description: string, read: () => number) =>
    Metric.registerUnsafe(Metric.counter(name, { description, incremental: true, attributes }), context, {
      get: () => ({ count: read(), incremental: true }),
      update: constVoid,
      modify: constVoid
    })
  return [
    Metric.registerUnsafe(
      Metric.gauge("effect_graceful_in_flight", { description: "Units of work in flight, per group", attributes }),
      context,
      { get: () => ({ value: inFlight.count }), update: constVoid, modify: constVoid }
    ),
    counter("effect_graceful_units_started_total", "Units of work started, per group", () => inFlight.started),
    counter(
      "effect_graceful_units_cut_total",
      "Units of work cut at the drain deadline (or a drain timeout of their own), per group",
      () => inFlight.cutTotal
    )
  ]
}

/** What a counter reads of a {@link Tally}. @internal */
export interface Tallied {
  /** Units in flight not yet handed over. */
  readonly inFlight: () => number
  /** Units started and not handed over. */
  readonly started: () => number
  readonly countEach: () => void
  /**
   * The owner's units not cut before (a worker pool's busy workers): how many,
   * and how to interrupt them — called once the count is recorded. Without
   * it, the owner's `onCut` cuts them.
   */
  readonly cut?: (() => { readonly count: number; readonly interrupt: () => void }) | undefined
}

/** What an owner tells its {@link Tally}: its units in flight, and how to count one of them on its own. @internal */
export interface Owner<U> {
  /** Its units in flight, read off its own state (the responses its connections write, its busy workers). */
  readonly busy: () => Iterable<U>
  /** How many those are, cheaply. */
  readonly busyCount: () => number
  /** Counts `unit` on its own from now on: `counter.add()`, and a `done` when it ends. */
  readonly handOver: (unit: U, counter: InFlight) => void
  readonly cut?: Tallied["cut"]
}

/**
 * Units an owner keeps account of itself while nobody needs them one by one —
 * a server's HTTP/1 requests, a worker pool's units: counting each costs a
 * listener or a counter update that a hello world or a hot loop would pay for
 * nothing. Until someone waits for them (the drain, `Quit.awaitIdle`) or cuts
 * them, a unit that starts is only tallied, and the counter reads how many
 * are in flight off the owner; then `countEach` hands those in flight over to
 * the counter, and from then on every unit is counted on its own. One for
 * connections and worker pools alike.
 *
 * @internal
 */
export class Tally<U> implements Tallied {
  readonly #owner: Owner<U>
  #counter: InFlight | undefined
  #each = false
  #uncounted = 0
  readonly cut: Tallied["cut"]

  constructor(owner: Owner<U>) {
    this.#owner = owner
    this.cut = owner.cut
  }

  /** Counts from now on in `counter`. */
  attach(counter: InFlight): void {
    this.#counter = counter
    counter.adopt(this)
  }

  /** The hot path: a unit starts. The counter when it must be counted on its own, else nothing (it is tallied). */
  start(): InFlight | undefined {
    if (this.#each && this.#counter !== undefined) return this.#counter
    this.#uncounted++
    return undefined
  }

  readonly inFlight = (): number => this.#each ? 0 : this.#owner.busyCount()

  readonly started = (): number => this.#uncounted

  readonly countEach = (): void => {
    const counter = this.#counter
    if (this.#each || counter === undefined) return
    this.#each = true
    for (const unit of this.#owner.busy()) {
      this.#uncounted--
      this.#owner.handOver(unit, counter)
    }
  }
}

/** @internal */
export class InFlight {
  readonly name: string
  #count = 0
  #started = 0
  // Made by the first waiter while units are in flight and opened (then
  // dropped) when the count reaches zero: "wait until idle" with no polling,
  // and counting touches no latch while nobody waits — which is all the time
  // but the drain.
  #idle: Latch.Latch | undefined
  // A fiber may run several counted units of one group at once (nested
  // `track`), so we keep a multiplicity per fiber.
  readonly #fibers = new Map<Fiber.Fiber<unknown, unknown>, number>()
  #cutTotal = 0
  // Fibers interrupted by a cut and not yet done, and how many `enter` units
  // were in flight at the last cut: a later cut counts only what came since.
  readonly #cutFibers = new WeakSet<Fiber.Fiber<unknown, unknown>>()
  #cutEntered = 0
  #tally: Tallied | undefined
  readonly #series: ReadonlyArray<Metric.Registration>

  constructor(name: string, context: Context.Context<never>) {
    this.name = name
    this.#series = register(this, context)
  }

  /** Removes its metric series: the group is gone (closed while the program ran on). */
  unregister(): void {
    for (const series of this.#series) series.remove()
  }

  get count(): number {
    return this.#tally === undefined ? this.#count : this.#count + this.#tally.inFlight()
  }

  get started(): number {
    return this.#tally === undefined ? this.#started : this.#started + this.#tally.started()
  }

  /** Adds units its owner keeps account of; they are counted one by one from the first wait or cut. */
  adopt(tally: Tallied): void {
    this.#tally = tally
  }

  get cutTotal(): number {
    return this.#cutTotal
  }

  /**
   * Counts one unit and allocates nothing: the form for hot paths (a request).
   * Pair it with exactly one {@link done}; a bound function, so that it can be
   * passed around as is.
   */
  readonly add = (): void => {
    this.#count++
    this.#started++
  }

  /**
   * Ends one unit counted by {@link add}. Not idempotent: the caller makes
   * sure it runs once per unit (Node emits a response's `close` once).
   */
  readonly done = (): void => {
    if (--this.#count === 0 && this.#idle !== undefined) {
      const idle = this.#idle
      this.#idle = undefined
      idle.openUnsafe()
    }
  }

  /** Counts one unit; the returned release is idempotent. */
  enter(): () => void {
    this.add()
    let released = false
    return () => {
      if (released) return
      released = true
      this.done()
    }
  }

  /** Completes the moment the count is zero (at once if it already is). */
  get awaitIdle(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.#tally?.countEach()
      if (this.#count === 0) return Effect.void
      this.#idle ??= Latch.makeUnsafe(false)
      return this.#idle.await
    })
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
   * Cuts the units in flight not cut before: interrupts their fibers and
   * returns how many they are (with the units counted by `enter`, which only
   * their owner can cut). A later cut reaches the units counted since.
   * `before` hears the count first: an interrupted fiber may end at once, and
   * whoever waits for the count to reach zero may run before this returns.
   */
  cut(before: (fresh: number) => void = constVoid): number {
    this.#tally?.countEach()
    let tracked = 0
    let freshUnits = 0
    const fresh: Array<Fiber.Fiber<unknown, unknown>> = []
    for (const [fiber, units] of this.#fibers) {
      tracked += units
      if (this.#cutFibers.has(fiber)) continue
      freshUnits += units
      fresh.push(fiber)
    }
    // `enter` units have no fiber to tell them apart: those beyond the last
    // cut's count are the new ones — unless their owner cuts them itself.
    const entered = this.#count - tracked
    const owned = this.#tally?.cut?.()
    const count = freshUnits + (owned === undefined ? Math.max(0, entered - this.#cutEntered) : owned.count)
    this.#cutEntered = entered
    this.#cutTotal += count
    before(count)
    for (const fiber of fresh) {
      this.#cutFibers.add(fiber)
      fiber.interruptUnsafe()
    }
    owned?.interrupt()
    return count
  }
}
