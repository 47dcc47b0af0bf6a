/**
 * Programs for the shutdown simulation, as plain data (so that fast-check
 * prints a failing one as it is), and their generator.
 *
 * A program is a layer graph of components; each component may hold closers,
 * groups (with units started when it is built and units its intake starts
 * later), workers (`Worker.loop` / `Worker.consume`) and stop functions, and
 * may sleep while it builds. All times are TestClock milliseconds; component
 * timeouts are given in permille of the shared timeout they must not exceed.
 */
import fc from "fast-check"

/** A unit of work: how long it takes (`never`: it never ends by itself), whether it ignores interruption. */
export interface Unit {
  readonly millis: number | "never"
  readonly ignoresInterrupt: boolean
}

export interface WorkerUnit extends Unit {
  readonly fails: boolean
}

export type Behavior = "done" | "slow" | "hung" | "failing" | "dying"

/** A closer (`Closer.add`) or a stop function (`Quit.registerStopFunc`). */
export interface Close {
  readonly behavior: Behavior
  /** How long a `slow` one takes, in permille of the close timeout. */
  readonly millis: number
  /** Its own timeout, in permille of the close timeout; none: the close timeout. */
  readonly timeout: number | null
}

export interface Group {
  readonly drainTimeout: number | null
  readonly closeTimeout: number | null
  /** Started when the component is built. */
  readonly units: ReadonlyArray<Unit>
  /** Started by the group's intake, this many milliseconds after it was made, until its `onStop`. */
  readonly intake: ReadonlyArray<{ readonly after: number; readonly unit: Unit }>
}

export interface Worker {
  readonly kind: "loop" | "consume"
  readonly workers: number
  /** The units it runs, in turn. */
  readonly units: ReadonlyArray<WorkerUnit>
  readonly policy: "log" | "fail"
  readonly drainTimeout: number | null
  readonly closeTimeout: number | null
  /** `consume` only: items in the queue at start, and items offered this many milliseconds after start. */
  readonly queued: number
  readonly offers: ReadonlyArray<number>
}

/** A component timeout longer than the shared one, refused with `InvalidOption` while the component builds. */
export type Invalid = "closer timeout" | "group drainTimeout" | "group closeTimeout" | "worker drainTimeout" | "stop func timeout"

export interface Component {
  /** The components it is built on (`Layer.provide`), as offsets: `d` is component `i + d`, if there is one. */
  readonly deps: ReadonlyArray<number>
  /** How long its build sleeps after registering everything (a signal then comes while starting). */
  readonly startup: number
  readonly closers: ReadonlyArray<Close>
  readonly groups: ReadonlyArray<Group>
  readonly workers: ReadonlyArray<Worker>
  readonly stopFuncs: ReadonlyArray<Close>
  /** A finalizer of the user's own that never ends: only the shutdown deadline ends the run. */
  readonly hangs: boolean
  readonly invalid: Invalid | null
}

export interface Timings {
  readonly shutdownTimeout: number
  readonly drainDelay: number
  /** Unset: derived from what the others leave of the shutdown timeout. */
  readonly drainTimeout: number | null
  readonly closeTimeout: number | null
}

/**
 * An automatic drain delay (`DRAIN_DELAY=auto`, its maximum the program's
 * `drainDelay`) and what the balancers do meanwhile: probers of readiness,
 * each from `from` every `every` ms, falling silent `silentAfter` ms after
 * the signal (null: never); requests routed here, ms after the signal.
 */
export interface Routing {
  readonly min: number
  readonly notReady: number
  readonly quiet: number
  readonly probers: ReadonlyArray<{ readonly from: number; readonly every: number; readonly silentAfter: number | null }>
  readonly requests: ReadonlyArray<number>
}

export interface Program {
  readonly timings: Timings
  /** Null: a fixed drain delay. */
  readonly routing: Routing | null
  readonly components: ReadonlyArray<Component>
  /** When `Quit.fire(Quit.signal("SIGTERM"))` is called; none for a program refused with `InvalidOption`. */
  readonly signalAt: number | null
  /** A second SIGTERM (`quit.force`) after the quit event fired, in permille of the shutdown timeout (at least 1 ms). */
  readonly secondAfter: number | null
}

// ---- the generator -----------------------------------------------------------

const weighted = <A>(...choices: ReadonlyArray<readonly [number, fc.Arbitrary<A>]>): fc.Arbitrary<A> =>
  fc.oneof(...choices.map(([weight, arbitrary]) => ({ weight, arbitrary })))

// Shrinks towards false.
const sometimes = (oneIn: number) => fc.integer({ min: 0, max: oneIn - 1 }).map((n) => n === oneIn - 1)
const orNull = <A>(arbitrary: fc.Arbitrary<A>, nullWeight = 1, valueWeight = 1) =>
  weighted<A | null>([nullWeight, fc.constant(null)], [valueWeight, arbitrary])
const permille = fc.integer({ min: 0, max: 1000 })

const unitMillis = weighted<number | "never">([4, fc.integer({ min: 1, max: 8000 })], [1, fc.constant("never")])
const unit: fc.Arbitrary<Unit> = fc.record({ millis: unitMillis, ignoresInterrupt: sometimes(5) })

// A worker runs its units back to back: they take at least 20 ms, so that a run stays short.
const workerUnit: fc.Arbitrary<WorkerUnit> = fc.record({
  millis: weighted<number | "never">([6, fc.integer({ min: 20, max: 4000 })], [1, fc.constant("never")]),
  ignoresInterrupt: sometimes(5),
  fails: sometimes(4)
})

const close: fc.Arbitrary<Close> = fc.record({
  behavior: weighted<Behavior>(
    [4, fc.constant("done")],
    [3, fc.constant("slow")],
    [1, fc.constant("hung")],
    [1, fc.constant("failing")],
    [1, fc.constant("dying")]
  ),
  millis: fc.integer({ min: 1, max: 1500 }),
  timeout: orNull(permille)
})

const group: fc.Arbitrary<Group> = fc.record({
  drainTimeout: orNull(permille, 2),
  closeTimeout: orNull(permille, 2),
  units: fc.array(unit, { maxLength: 3 }),
  intake: fc.array(fc.record({ after: fc.integer({ min: 0, max: 8000 }), unit }), { maxLength: 3 })
})

const worker: fc.Arbitrary<Worker> = fc.record({
  kind: fc.constantFrom("loop", "consume"),
  workers: fc.integer({ min: 1, max: 3 }),
  units: fc.array(workerUnit, { minLength: 1, maxLength: 4 }),
  policy: weighted<"log" | "fail">([3, fc.constant("log")], [1, fc.constant("fail")]),
  drainTimeout: orNull(permille, 3),
  closeTimeout: orNull(permille, 3),
  queued: fc.integer({ min: 0, max: 4 }),
  offers: fc.array(fc.integer({ min: 0, max: 8000 }), { maxLength: 3 })
})

const component: fc.Arbitrary<Component> = fc.record({
  deps: fc.array(fc.integer({ min: 1, max: 11 }), { maxLength: 3 }),
  startup: weighted([4, fc.constant(0)], [1, fc.integer({ min: 1, max: 2000 })]),
  closers: fc.array(close, { maxLength: 2 }),
  groups: fc.array(group, { maxLength: 2 }),
  workers: fc.array(worker, { maxLength: 1 }),
  stopFuncs: fc.array(close, { maxLength: 1 }),
  hangs: sometimes(80),
  invalid: fc.constant(null)
})

/** Valid by construction: drainDelay + drainTimeout + closeTimeout leaves at least a tenth of the rest. */
const timings: fc.Arbitrary<Timings> = fc.record({
  shutdownTimeout: fc.integer({ min: 1000, max: 20_000 }),
  drainDelay: weighted([1, fc.constant(0)], [3, permille]),
  drainTimeout: orNull(permille),
  closeTimeout: orNull(permille)
}).map(({ closeTimeout, drainDelay, drainTimeout, shutdownTimeout }) => {
  const delay = Math.floor((drainDelay * shutdownTimeout) / 2000)
  const drain = drainTimeout === null ? null : Math.floor((drainTimeout * (shutdownTimeout - delay) * 0.8) / 1000)
  const rest = shutdownTimeout - delay - (drain ?? 0)
  const closing = closeTimeout === null ? null : Math.floor((closeTimeout * rest * 0.9) / 1000)
  return { shutdownTimeout, drainDelay: delay, drainTimeout: drain, closeTimeout: closing }
})

const invalid = fc.constantFrom<Invalid>(
  "closer timeout",
  "group drainTimeout",
  "group closeTimeout",
  "worker drainTimeout",
  "stop func timeout"
)

const routing = (delay: number): fc.Arbitrary<Routing | null> =>
  delay === 0 ? fc.constant(null) : orNull(
    fc.record({
      min: fc.integer({ min: 0, max: delay }),
      notReady: fc.integer({ min: 1, max: 4 }),
      quiet: fc.integer({ min: 0, max: delay }),
      probers: fc.array(
        fc.record({
          from: fc.integer({ min: 0, max: 3000 }),
          every: fc.integer({ min: 50, max: 2000 }),
          silentAfter: orNull(fc.integer({ min: 0, max: delay }), 3)
        }),
        { maxLength: 3 }
      ),
      requests: fc.array(fc.integer({ min: 0, max: delay }), { maxLength: 6 })
    }),
    2
  )

const faulty: fc.Arbitrary<Program> = timings.chain((t) =>
  fc.record({
    timings: fc.constant(t),
    routing: routing(t.drainDelay),
    components: fc.array(component, { minLength: 1, maxLength: 12 }),
    signalAt: weighted([1, fc.integer({ min: 0, max: 500 })], [3, fc.integer({ min: 0, max: 8000 })]),
    secondAfter: orNull(fc.integer({ min: 0, max: 1100 }), 2)
  })
)

const calmUnit = <U extends Unit>(u: U): U => ({ ...u, millis: u.millis === "never" ? 1000 : u.millis, ignoresInterrupt: false })
const calmClose = (c: Close): Close => ({
  behavior: c.behavior === "done" ? "done" : "slow",
  millis: Math.floor(c.millis / 10),
  timeout: c.timeout === null ? null : Math.max(c.timeout, 500)
})

/** The same program with no fault at all: every unit ends and heeds interruption, every close ends. */
const calm = (program: Program): Program => ({
  ...program,
  components: program.components.map((c) => ({
    ...c,
    hangs: false,
    closers: c.closers.map(calmClose),
    stopFuncs: c.stopFuncs.map(calmClose),
    groups: c.groups.map((g) => ({ ...g, units: g.units.map(calmUnit), intake: g.intake.map((i) => ({ ...i, unit: calmUnit(i.unit) })) })),
    workers: c.workers.map((w) => ({ ...w, units: w.units.map((u) => ({ ...calmUnit(u), fails: false })) }))
  }))
})

const down = (n: number, q: number) => Math.floor(n / q) * q
const up = (n: number, q: number) => Math.ceil(n / q) * q
const grid = (n: number | null, q: number) => n === null ? null : down(n, q)
const gridUnit = <U extends Unit>(u: U, min = 0): U => ({ ...u, millis: u.millis === "never" ? u.millis : Math.max(min, down(u.millis, 100)) })
const gridClose = (c: Close): Close => ({ ...c, millis: Math.max(1, down(c.millis, 250)), timeout: grid(c.timeout, 250) })

/**
 * The same program with every time on a grid (100 ms; permilles in quarters),
 * so that units end, signals come and deadlines fall on the same instants.
 * Rounding the shutdown timeout up and the others down keeps the budget.
 */
const onGrid = (program: Program): Program => ({
  routing: program.routing === null ? null : {
    ...program.routing,
    min: down(program.routing.min, 100),
    quiet: down(program.routing.quiet, 100),
    probers: program.routing.probers.map((p) => ({ from: down(p.from, 100), every: up(p.every, 100), silentAfter: grid(p.silentAfter, 100) })),
    requests: program.routing.requests.map((r) => down(r, 100))
  },
  timings: {
    shutdownTimeout: up(program.timings.shutdownTimeout, 100),
    drainDelay: down(program.timings.drainDelay, 100),
    drainTimeout: grid(program.timings.drainTimeout, 100),
    closeTimeout: grid(program.timings.closeTimeout, 100)
  },
  signalAt: grid(program.signalAt, 100),
  secondAfter: grid(program.secondAfter, 250),
  components: program.components.map((c) => ({
    ...c,
    startup: down(c.startup, 100),
    closers: c.closers.map(gridClose),
    stopFuncs: c.stopFuncs.map(gridClose),
    groups: c.groups.map((g) => ({
      drainTimeout: grid(g.drainTimeout, 250),
      closeTimeout: grid(g.closeTimeout, 250),
      units: g.units.map((u) => gridUnit(u)),
      intake: g.intake.map((i) => ({ after: down(i.after, 100), unit: gridUnit(i.unit) }))
    })),
    workers: c.workers.map((w) => ({
      ...w,
      drainTimeout: grid(w.drainTimeout, 250),
      closeTimeout: grid(w.closeTimeout, 250),
      units: w.units.map((u) => gridUnit(u, 100)),
      offers: w.offers.map((o) => down(o, 100))
    }))
  }))
})

const mixed: fc.Arbitrary<Program> = weighted([2, faulty], [1, faulty.map(calm)])
const valid: fc.Arbitrary<Program> = weighted([2, mixed], [1, mixed.map(onGrid)])

/**
 * A program refused at start: one component asks for a timeout longer than
 * the shared one. No signal comes; nothing hangs; no failure fires the quit
 * event first: the run must end by itself, `completed`, with exit code 1.
 */
const refused: fc.Arbitrary<Program> = fc.tuple(valid, fc.nat(), invalid).map(([program, at, what]) => ({
  ...program,
  signalAt: null,
  secondAfter: null,
  components: program.components.map((c, i) => ({
    ...c,
    hangs: false,
    workers: c.workers.map((w) => ({ ...w, policy: "log" as const })),
    invalid: i === at % program.components.length ? what : null
  }))
}))

export const programs: fc.Arbitrary<Program> = weighted([9, valid], [1, refused])

// ---- reading a program -----------------------------------------------------------

/** The components `i` is built on: later indices only, so that the graph has no cycle. */
export const depsOf = (program: Program, i: number): ReadonlyArray<number> =>
  [...new Set(program.components[i]!.deps.map((d) => i + d))].filter((d) => d < program.components.length).sort((a, b) => a - b)

/** Every component that is built on `i`, directly or not. */
export const dependentsOf = (program: Program, i: number): ReadonlySet<number> => {
  const found = new Set<number>()
  const visit = (j: number) => {
    for (let k = 0; k < j; k++) {
      if (!found.has(k) && depsOf(program, k).includes(j)) {
        found.add(k)
        visit(k)
      }
    }
  }
  visit(i)
  return found
}

/** The components nothing is built on: merged into the program's layer. */
export const rootsOf = (program: Program): ReadonlyArray<number> =>
  program.components.map((_, i) => i).filter((i) => dependentsOf(program, i).size === 0)

export const isRefused = (program: Program): boolean => program.components.some((c) => c.invalid !== null)
