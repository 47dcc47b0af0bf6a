/**
 * Groups: units of work counted under one name, drained when their scope
 * closes against the deadlines of the quit event.
 *
 * @internal
 */
import type { Scope } from "effect"
import { Deferred, Duration, Effect, Exit, Fiber, Result } from "effect"
import { bounded } from "./bounded.ts"
import { first } from "./first.ts"
import type { InFlight } from "./inFlight.ts"
import { componentTimeout, type DurationInput, type InvalidOption } from "./options.ts"
import type { QuitImpl } from "./quit.ts"
import type { Closed, Counted } from "./registry.ts"
import * as sequence from "./sequence.ts"

/** Documented on the public `Quit` module. @internal */
export interface Group {
  readonly name: string
  readonly inFlight: Effect.Effect<number>
  readonly awaitIdle: Effect.Effect<void>
  readonly closing: Effect.Effect<void>
  readonly isClosing: Effect.Effect<boolean>
  readonly track: <A, E, R>(unit: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly fork: <A, E, R>(unit: Effect.Effect<A, E, R>) => Effect.Effect<Fiber.Fiber<A, E>, never, R>
  readonly enterUnsafe: () => () => void
}

/** Documented on the public `Quit` module. @internal */
export interface GroupOptions {
  readonly kind?: string | undefined
  readonly drainTimeout?: DurationInput | undefined
  readonly closeTimeout?: DurationInput | undefined
  readonly onStop?: Effect.Effect<void, unknown> | undefined
  readonly onCut?: Effect.Effect<void, unknown> | undefined
}

/** What the library's own servers and pools add to a group. @internal */
export interface MakeOptions extends GroupOptions {
  /** Called the moment the quit event fires (at once if it has), while the group is registered; synchronous. */
  readonly onFire?: (() => void) | undefined
  /**
   * Called the moment the drain delay ends (at once if it has), while the
   * group is registered; synchronous: a listener closes in that very turn.
   */
  readonly onStopping?: (() => void) | undefined
  /**
   * The last step of the group's close, after its drain, with the units still
   * in flight then (stuck past the cut): what the units used (connections, a
   * source). Its own bound is its own business.
   */
  readonly afterDrain?: ((stuck: number) => Effect.Effect<void>) | undefined
  /**
   * The group's own close, after its drain (given the units still in flight
   * then), in its row: its time is the row's, a failure makes the row
   * `failed`, and the close deadline abandons it (an app's `onClose` hooks).
   */
  readonly close?: ((stuck: number) => Effect.Effect<void, unknown>) | undefined
}

/** A group made, and its counter: for the library's own servers and pools. @internal */
export interface Made {
  readonly group: Group
  readonly inFlight: InFlight
}

/** @internal */
export const toGroup = (entry: Counted): Group => {
  const inFlight = entry.inFlight
  return {
    name: entry.name,
    closing: Deferred.await(entry.intake),
    isClosing: Deferred.isDone(entry.intake),
    inFlight: Effect.sync(() => inFlight.count),
    awaitIdle: inFlight.awaitIdle,
    // In a fiber of its own, joined: the cut interrupts the unit, not the
    // code around it, which sees the unit's exit (an interruption).
    track: (unit) => Effect.flatMap(Effect.forkChild(inFlight.track(unit), { startImmediately: true }), Fiber.join),
    fork: (unit) => Effect.forkDetach(inFlight.track(unit), { startImmediately: true }),
    enterUnsafe: () => inFlight.enter()
  }
}

/** The timeouts of one group: its own, checked against the shared ones. @internal */
export interface Timeouts {
  readonly drainTimeout: Duration.Duration
  readonly closeTimeout: Duration.Duration
}

/** A group's own timeouts; one longer than the shared one is refused. @internal */
export const timeouts = (
  quit: QuitImpl,
  name: string,
  options: Pick<GroupOptions, "drainTimeout" | "closeTimeout">
): Effect.Effect<Timeouts, InvalidOption> =>
  Effect.fromResult(Result.all({
    drainTimeout: componentTimeout(quit.options, "drainTimeout", options.drainTimeout, `${name}: drainTimeout`),
    closeTimeout: componentTimeout(quit.options, "closeTimeout", options.closeTimeout, `${name}: closeTimeout`)
  }))

/**
 * Registers a group for the lifetime of the current scope; it drains when the
 * scope closes.
 *
 * @internal
 */
export const make = (
  quit: QuitImpl,
  name: string,
  options: MakeOptions = {}
): Effect.Effect<Made, InvalidOption, Scope.Scope> =>
  Effect.gen(function*() {
    const own = yield* timeouts(quit, name, options)
    const entry = quit.registerGroup(name, options.kind ?? "group", options.onCut)
    const inFlight = entry.inFlight
    if (options.onFire !== undefined) sequence.onFire(quit, entry, options.onFire)
    if (options.onStopping !== undefined) sequence.onStopping(quit, entry, options.onStopping)
    const { afterDrain } = options
    // One finalizer, its steps in order: the drain, then what it leaves.
    yield* Effect.addFinalizer(() => {
      const drained = drain(quit, entry, { ...own, onStop: options.onStop, close: options.close })
      return afterDrain === undefined ? drained : Effect.andThen(drained, Effect.suspend(() => afterDrain(inFlight.count)))
    })
    return { group: toGroup(entry), inFlight }
  })

/**
 * Drains a counted entry, in this order, against one set of instants:
 *
 * 1. after the quit event, it waits for the end of the drain delay: its
 *    intake stays open while balancers move traffic away;
 * 2. `onStop` stops its intake (a failing one is logged; the drain goes on);
 * 3. it waits until no unit is in flight — woken by the count, never polled;
 * 4. at the drain deadline (or its own shorter drain timeout) the units left
 *    are cut, then it waits for them to end;
 * 5. by the close deadline (or its own shorter close timeout after the cut)
 *    it is done, or abandoned.
 *
 * Without a quit event (a scope closing while the program runs) the same
 * steps count from the moment the scope closes.
 *
 * @internal
 */
export const drain = (
  quit: QuitImpl,
  entry: Counted,
  options: Timeouts & {
    readonly onStop?: Effect.Effect<void, unknown> | undefined
    readonly close?: ((stuck: number) => Effect.Effect<void, unknown>) | undefined
  }
): Effect.Effect<void> => {
  const inFlight = entry.inFlight
  const { close, closeTimeout, drainTimeout, onStop } = options
  const body: Effect.Effect<Closed> = Effect.gen(function*(): Effect.fn.Return<Closed> {
    yield* quit.awaitStopping
    const cutAt = quit.now() + Duration.toMillis(drainTimeout)
    entry.stopIntake()
    const cutting = quit.until(cutAt, "drain")
    let failure: string | undefined
    // User code may hang uninterruptibly: `bounded` stops waiting at the cut.
    if (onStop !== undefined) {
      const stopped = yield* bounded(onStop, cutting)
      if (stopped._tag === "Exited" && Exit.isFailure(stopped.exit)) {
        failure = `stopping failed: ${sequence.describeCause(stopped.exit.cause)}`
        yield* Effect.logError(`${entry.label}: stopping failed; draining what is in flight`, stopped.exit.cause)
      }
    }
    const idle = yield* first(Effect.as(inFlight.awaitIdle, true), Effect.as(cutting, false))
    let ended = true
    if (!idle) {
      const deadline = quit.deadlines !== undefined && quit.deadlines.drain <= cutAt
      const cut = Effect.andThen(sequence.cut(quit, entry, deadline ? "at the drain deadline" : "at the drain timeout"), inFlight.awaitIdle)
      const endAt = quit.now() + Duration.toMillis(closeTimeout)
      // At the close deadline the close itself abandons the drain; before it,
      // a close timeout of its own does.
      if (quit.deadlines !== undefined && endAt >= quit.deadlines.close) yield* cut
      else ended = (yield* bounded(cut, quit.until(endAt, "close")))._tag === "Exited"
    }
    if (ended && close !== undefined) {
      const closed = yield* Effect.exit(close(inFlight.count))
      if (Exit.isFailure(closed)) {
        failure ??= `closing failed: ${sequence.describeCause(closed.cause)}`
        yield* Effect.logError(`${entry.label} failed to close`, closed.cause)
      }
    }
    const cut = entry.cut
    if (!ended) {
      yield* Effect.logWarning(`${entry.label} did not close within ${Duration.format(closeTimeout)} of the cut; abandoned`)
      return { outcome: "timed out", detail: `abandoned ${Duration.format(closeTimeout)} after the cut` } as const
    }
    if (failure !== undefined) return { outcome: "failed", detail: failure } as const
    if (cut !== undefined) return { outcome: "cut", detail: `${cut.count} cut ${cut.why}` } as const
    return { outcome: "done" } as const
  })
  // The body bounds its own steps; the close deadline bounds the whole.
  return sequence.close(quit, entry, body, Duration.infinity)
}
