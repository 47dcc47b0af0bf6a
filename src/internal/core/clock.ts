/**
 * The quit event's clock, on Effect's `Clock` (so `TestClock` in tests).
 *
 * @internal
 */
import type { Clock } from "effect"
import { Duration, Effect } from "effect"

const NANOS_PER_MILLI = BigInt(1_000_000)

/** @internal */
export class QuitClock {
  readonly #clock: Clock.Clock
  readonly #wallStart: number
  readonly #monotonicStart: bigint

  constructor(clock: Clock.Clock) {
    this.#clock = clock
    this.#wallStart = clock.currentTimeMillisUnsafe()
    this.#monotonicStart = clock.monotonicTimeNanosUnsafe()
  }

  /**
   * Epoch milliseconds: the wall clock's reading when the quit event was
   * made, advanced by Effect's monotonic clock — as Go's `time.Now()` carries
   * a monotonic reading, so that a step of the system clock (an NTP
   * correction, a resumed VM) moves no deadline.
   */
  now(): number {
    return this.#wallStart + Number((this.#clock.monotonicTimeNanosUnsafe() - this.#monotonicStart) / NANOS_PER_MILLI)
  }

  /** Milliseconds, cheaply: for spans measured on the spot (a connection's grace), not for deadlines. */
  millis(): number {
    return this.#clock.currentTimeMillisUnsafe()
  }

  /** Sleeps until `at` (epoch milliseconds of {@link now}; at once if it has passed). */
  sleepUntil(at: number): Effect.Effect<void> {
    return Effect.suspend(() => at === Infinity ? Effect.never : Effect.sleep(Duration.millis(Math.max(0, at - this.now()))))
  }
}
