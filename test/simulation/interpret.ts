/**
 * A program as a layer graph, every step of which writes an event with its
 * TestClock time into a shared log.
 */
import { Deferred, Duration, Effect, Layer, Queue, type Scope } from "effect"
import { Closer, Quit, Worker } from "../../src/index.ts"
import type { Options } from "../../src/index.ts"
import * as P from "./programs.ts"

export type What =
  | "building" // a component's build began
  | "built" // a component's build ended
  | "closing" // a component's first finalizer (its release begins)
  | "closed" // a component's last finalizer (its release ended)
  | "releasing" // a group's or worker's release begins (just before its drain)
  | "released" // a group's or worker's release ended (just after its drain)
  | "onStop" // a group's intake stopped
  | "started" // a unit started
  | "ended" // a unit's body ended by itself (for a failing worker unit: just before it fails)
  | "interrupted" // a unit was interrupted
  | "exit" // a unit's fiber is done
  | "registered" // a closer or stop function was registered
  | "ran" // a closer or stop function began
  | "done" // a closer or stop function ended by itself, without failing
  | "hang" // a finalizer that never ends began

export interface Event {
  readonly at: number
  readonly what: What
  readonly name: string
}

export interface UnitInfo {
  readonly owner: string
  readonly millis: number | "never"
  readonly ignoresInterrupt: boolean
  /** A failing unit of a worker whose policy fails the app. */
  readonly failsApp: boolean
}

export interface OwnerInfo {
  readonly component: number
  readonly kind: "group" | "worker"
  /** Its own drain timeout (ms), or the shared one. */
  readonly drainTimeout: number
}

export interface CloseInfo {
  readonly component: number
  readonly kind: "closer" | "stop func"
  readonly spec: P.Close
}

/** The shared log, and what each name in it stands for. */
export class Recorder {
  readonly events: Array<Event> = []
  readonly units = new Map<string, UnitInfo>()
  readonly owners = new Map<string, OwnerInfo>()
  readonly closes = new Map<string, CloseInfo>()

  mark(what: What, name: string): Effect.Effect<void> {
    return Effect.clockWith((clock) => Effect.sync(() => void this.events.push({ at: clock.currentTimeMillisUnsafe(), what, name })))
  }

  first(what: What, name: string): Event | undefined {
    return this.events.find((e) => e.what === what && e.name === name)
  }

  all(what: What, name?: string): ReadonlyArray<Event> {
    return this.events.filter((e) => e.what === what && (name === undefined || e.name === name))
  }
}

const ms = (permille: number | null, shared: Duration.Duration): number =>
  permille === null ? Duration.toMillis(shared) : Math.floor((permille * Duration.toMillis(shared)) / 1000)

/** Builds layers for one program, given the options the quit event resolved. */
export const app = (program: P.Program, options: Options.Options, rec: Recorder): Layer.Layer<never, Options.InvalidOption, Quit.Quit> => {
  const closeTimeout = (permille: number | null) => permille === null ? undefined : ms(permille, options.closeTimeout)
  const drainTimeout = (permille: number | null) => permille === null ? undefined : ms(permille, options.drainTimeout)

  const unit = (name: string, owner: string, spec: P.Unit, fails = false, failsApp = false): Effect.Effect<void, string> => {
    rec.units.set(name, { owner, millis: spec.millis, ignoresInterrupt: spec.ignoresInterrupt, failsApp: fails && failsApp })
    const body = Effect.andThen(
      spec.millis === "never" ? Effect.never : Effect.sleep(spec.millis),
      Effect.andThen(rec.mark("ended", name), fails ? Effect.fail("unit failed") : Effect.void)
    )
    return rec.mark("started", name).pipe(
      Effect.andThen(spec.ignoresInterrupt ? Effect.uninterruptible(body) : body),
      Effect.onInterrupt(() => rec.mark("interrupted", name)),
      Effect.onExit(() => rec.mark("exit", name))
    )
  }

  const closeBody = (name: string, spec: P.Close): Effect.Effect<void, string> => {
    const done = rec.mark("done", name)
    const behave: Effect.Effect<void, string> = spec.behavior === "done"
      ? done
      : spec.behavior === "slow"
      ? Effect.andThen(Effect.sleep(Math.max(1, ms(spec.millis, options.closeTimeout))), done)
      : spec.behavior === "hung"
      ? Effect.never
      : spec.behavior === "failing"
      ? Effect.fail("close failed")
      : Effect.die(new Error("close died"))
    return Effect.andThen(rec.mark("ran", name), behave)
  }

  /** Markers around an owner: `releasing` runs just before its drain, `released` just after. */
  const owned = <A>(name: string, make: Effect.Effect<A, Options.InvalidOption, Quit.Quit | Scope.Scope>) =>
    Effect.gen(function*() {
      yield* Effect.addFinalizer(() => rec.mark("released", name))
      const made = yield* make
      yield* Effect.addFinalizer(() => rec.mark("releasing", name))
      return made
    })

  const group = (c: number, name: string, spec: P.Group) =>
    owned(
      name,
      Effect.gen(function*() {
        rec.owners.set(name, { component: c, kind: "group", drainTimeout: ms(spec.drainTimeout, options.drainTimeout) })
        let stopped = false
        const made = yield* Deferred.make<Quit.Group>()
        // Forked before the group, so that it is interrupted only after the group has drained.
        yield* Effect.forkScoped(Effect.gen(function*() {
          const g = yield* Deferred.await(made)
          let elapsed = 0
          const intake = [...spec.intake].sort((a, b) => a.after - b.after)
          for (const [k, planned] of intake.entries()) {
            yield* Effect.sleep(planned.after - elapsed)
            elapsed = planned.after
            if (stopped) return
            yield* g.fork(unit(`${name}.i${k}`, name, planned.unit))
          }
        }))
        const g = yield* Quit.group(name, {
          drainTimeout: drainTimeout(spec.drainTimeout),
          closeTimeout: closeTimeout(spec.closeTimeout),
          onStop: Effect.suspend(() => {
            stopped = true
            return rec.mark("onStop", name)
          })
        })
        yield* Deferred.succeed(made, g)
        for (const [k, u] of spec.units.entries()) yield* g.fork(unit(`${name}.u${k}`, name, u))
      })
    )

  const worker = (c: number, name: string, spec: P.Worker) =>
    owned(
      name,
      Effect.gen(function*() {
        rec.owners.set(name, { component: c, kind: "worker", drainTimeout: ms(spec.drainTimeout, options.drainTimeout) })
        let n = 0
        const next = Effect.suspend(() => {
          const k = n++
          const u = spec.units[k % spec.units.length]!
          return unit(`${name}.u${k}`, name, u, u.fails, spec.policy === "fail")
        })
        const opts = {
          workers: spec.workers,
          onFailure: spec.policy === "fail" ? Worker.failApp : Worker.logAndContinue,
          drainTimeout: drainTimeout(spec.drainTimeout),
          closeTimeout: closeTimeout(spec.closeTimeout)
        }
        if (spec.kind === "loop") return yield* Worker.loop(name, next, opts)
        const queue = yield* Queue.unbounded<number>()
        for (let k = 0; k < spec.queued; k++) yield* Queue.offer(queue, k)
        yield* Effect.forkScoped(Effect.gen(function*() {
          let elapsed = 0
          for (const [k, after] of [...spec.offers].sort((a, b) => a - b).entries()) {
            yield* Effect.sleep(after - elapsed)
            elapsed = after
            yield* Queue.offer(queue, spec.queued + k)
          }
        }))
        return yield* Worker.consume(name, Worker.fromQueue(queue), () => next, opts)
      })
    )

  const refuse = (c: number, what: P.Invalid): Effect.Effect<unknown, Options.InvalidOption, Quit.Quit | Scope.Scope> => {
    const name = `c${c}.refused`
    const longer = (shared: Duration.Duration) => Duration.toMillis(shared) + 1
    switch (what) {
      case "closer timeout":
        return Closer.add(name, Effect.void, { timeout: longer(options.closeTimeout) })
      case "group drainTimeout":
        return Quit.group(name, { drainTimeout: longer(options.drainTimeout) })
      case "group closeTimeout":
        return Quit.group(name, { closeTimeout: longer(options.closeTimeout) })
      case "worker drainTimeout":
        return Worker.loop(name, Effect.never, { drainTimeout: longer(options.drainTimeout) })
      case "stop func timeout":
        return Quit.registerStopFunc(name, Effect.void, { timeout: longer(options.closeTimeout) })
    }
  }

  const builds = new Map<number, number>()
  const build = (c: number, spec: P.Component) =>
    Layer.effectDiscard(Effect.gen(function*() {
      // Effect builds a shared layer again for the next user when its build failed: a new instance.
      const count = (builds.get(c) ?? 0) + 1
      builds.set(c, count)
      const name = count === 1 ? `c${c}` : `c${c}@${count}`
      yield* rec.mark("building", name)
      yield* Effect.addFinalizer(() => rec.mark("closed", name))
      for (const [k, s] of spec.closers.entries()) {
        const closer = `${name}.k${k}`
        rec.closes.set(closer, { component: c, kind: "closer", spec: s })
        yield* Closer.add(closer, closeBody(closer, s), { timeout: closeTimeout(s.timeout) })
        yield* rec.mark("registered", closer)
      }
      for (const [k, s] of spec.groups.entries()) yield* group(c, `${name}.g${k}`, s)
      for (const [k, s] of spec.workers.entries()) yield* worker(c, `${name}.w${k}`, s)
      for (const [k, s] of spec.stopFuncs.entries()) {
        const stop = `${name}.s${k}`
        rec.closes.set(stop, { component: c, kind: "stop func", spec: s })
        yield* Quit.registerStopFunc(stop, closeBody(stop, s), { timeout: closeTimeout(s.timeout) })
        yield* rec.mark("registered", stop)
      }
      if (spec.invalid !== null) yield* refuse(c, spec.invalid)
      if (spec.hangs) yield* Effect.addFinalizer(() => Effect.andThen(rec.mark("hang", name), Effect.never))
      yield* Effect.addFinalizer(() => rec.mark("closing", name))
      if (spec.startup > 0) yield* Effect.sleep(spec.startup)
      yield* rec.mark("built", name)
    }))

  const layers = new Map<number, Layer.Layer<never, Options.InvalidOption, Quit.Quit>>()
  const layerOf = (c: number): Layer.Layer<never, Options.InvalidOption, Quit.Quit> => {
    const known = layers.get(c)
    if (known !== undefined) return known
    const own = build(c, program.components[c]!)
    const deps = P.depsOf(program, c).map(layerOf)
    const made = deps.length === 0 ? own : own.pipe(Layer.provide(merge(deps)))
    layers.set(c, made)
    return made
  }
  return merge(P.rootsOf(program).map(layerOf))
}

const merge = <E, R>(layers: ReadonlyArray<Layer.Layer<never, E, R>>): Layer.Layer<never, E, R> => {
  const [first, ...rest] = layers
  if (first === undefined) return Layer.empty
  return rest.length === 0 ? first : Layer.mergeAll(first, ...rest)
}
