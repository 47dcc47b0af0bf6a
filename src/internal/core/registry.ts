/**
 * What the quit event keeps account of — every group, closer and stop
 * function registered with it — and the rows of the shutdown report they
 * become. Each entry is one state machine, `Open → Closing → Closed`.
 *
 * @internal
 */
import type { Effect } from "effect"
import { Deferred, Exit } from "effect"
import type { InFlight } from "./inFlight.ts"
import type { Outcome, Row } from "./report.ts"

/** What a close reports when it ends by itself. @internal */
export interface Closed {
  readonly outcome: "done" | "cut" | "timed out" | "failed"
  readonly detail?: string | undefined
}

/**
 * Where an entry is: registered; closing since `since` (epoch ms); or closed,
 * with how it ended.
 *
 * @internal
 */
export type State =
  | { readonly _tag: "Open" }
  | { readonly _tag: "Closing"; readonly since: number }
  | { readonly _tag: "Closed"; readonly since: number; readonly at: number; readonly ended: Closed }

/** A closer or a stop function: something closed once, with an outcome. @internal */
export class Entry {
  readonly name: string
  readonly kind: string
  state: State = { _tag: "Open" }

  constructor(name: string, kind: string) {
    this.name = name
    this.kind = kind
  }

  get label(): string {
    return `${this.name} (${this.kind})`
  }

  /** Whether it has stopped taking work: for a closer, once its close began. */
  get intakeStopped(): boolean {
    return this.state._tag !== "Open"
  }

  /** Its close begins at `now`; false if it began before. */
  begin(now: number): boolean {
    if (this.state._tag !== "Open") return false
    this.state = { _tag: "Closing", since: now }
    return true
  }

  /** Its close ended at `now`, as `ended` says. */
  end(now: number, ended: Closed): void {
    const since = this.state._tag === "Open" ? now : this.state.since
    this.state = { _tag: "Closed", since, at: now, ended }
  }

  /** A row for the report; an entry not closed by now was abandoned by the exit. */
  toRow(now: number): Row {
    const state = this.state
    switch (state._tag) {
      case "Open":
        return { ...this.counts(), name: this.name, kind: this.kind, outcome: "abandoned", millis: undefined, detail: "never began closing" }
      case "Closing":
        return {
          ...this.counts(),
          name: this.name,
          kind: this.kind,
          outcome: "abandoned",
          millis: now - state.since,
          detail: "still closing at exit"
        }
      case "Closed":
        return {
          ...this.counts(),
          name: this.name,
          kind: this.kind,
          outcome: state.ended.outcome satisfies Outcome,
          millis: state.at - state.since,
          detail: state.ended.detail
        }
    }
  }

  /** Units in flight when draining began and at the end; none for a closer. */
  counts(): Pick<Row, "inFlightAtDrain" | "inFlightAtEnd"> {
    return { inFlightAtDrain: undefined, inFlightAtEnd: undefined }
  }

  /** In words, for the log lines that say what is still open. */
  describeOpen(): string {
    return `${this.name} (${this.kind}, ${this.intakeStopped ? "closing" : "not yet closing"})`
  }
}

/** How many units a cut reached, and why. @internal */
export interface Cut {
  readonly count: number
  readonly why: string
}

/**
 * A group: units of work counted in flight, drained when it closes; cut at
 * the drain deadline (its fibers interrupted, then `onCut` for what only its
 * owner can end: sockets).
 *
 * @internal
 */
export class Counted extends Entry {
  readonly inFlight: InFlight
  readonly onCut: Effect.Effect<void, unknown> | undefined
  /** Completed when it stops taking new work (its listener closes, its workers stop taking). */
  readonly intake = Deferred.makeUnsafe<void>()
  /** Units in flight when the quit event fired (or when it began closing, without one). */
  atDrain: number | undefined
  atEnd: number | undefined
  /** The units cut so far, and why; none until a cut reaches one. */
  cut: Cut | undefined
  /** Completes when the cut's `onCut` has ended. */
  cutting: Effect.Effect<void> | undefined

  constructor(name: string, kind: string, inFlight: InFlight, onCut: Effect.Effect<void, unknown> | undefined) {
    super(name, kind)
    this.inFlight = inFlight
    this.onCut = onCut
  }

  override get intakeStopped(): boolean {
    return Deferred.isDoneUnsafe(this.intake)
  }

  /** Its intake stopped. */
  stopIntake(): void {
    Deferred.doneUnsafe(this.intake, Exit.void)
  }

  /** The count at the quit event, if not taken yet. */
  noteAtDrain(): void {
    this.atDrain ??= this.inFlight.count
  }

  override end(now: number, ended: Closed): void {
    this.atEnd = this.inFlight.count
    super.end(now, ended)
  }

  override counts(): Pick<Row, "inFlightAtDrain" | "inFlightAtEnd"> {
    return { inFlightAtDrain: this.atDrain ?? this.inFlight.count, inFlightAtEnd: this.atEnd ?? this.inFlight.count }
  }

  override describeOpen(): string {
    const count = this.inFlight.count
    return `${this.name} (${this.kind}, ${this.intakeStopped ? "closing" : "not yet closing"}${count > 0 ? `, ${count} in flight` : ""})`
  }
}

/**
 * Every entry of one quit event, in the order registered: names unique (a
 * second of one name gets `#2`), and what each asked to hear of the quit
 * event — called synchronously, once, the moment it happens.
 *
 * @internal
 */
export class Registry {
  readonly #entries: Array<Entry> = []
  readonly #names = new Set<string>()
  readonly #onFire = new Map<Entry, () => void>()
  readonly #onStopping = new Map<Entry, () => void>()

  get entries(): ReadonlyArray<Entry> {
    return this.#entries
  }

  /** `name`, or `name#2`, `name#3`… if it is taken. */
  unique(name: string): string {
    let unique = name
    for (let i = 2; this.#names.has(unique); i++) unique = `${name}#${i}`
    return unique
  }

  add<E extends Entry>(entry: E): E {
    this.#names.add(entry.name)
    this.#entries.push(entry)
    return entry
  }

  /** Removes an entry that leaves nothing behind. */
  remove(entry: Entry): void {
    const index = this.#entries.indexOf(entry)
    if (index !== -1) this.#entries.splice(index, 1)
    this.#names.delete(entry.name)
    this.#onFire.delete(entry)
    this.#onStopping.delete(entry)
  }

  find(name: string): Entry | undefined {
    return this.#entries.find((entry) => entry.name === name)
  }

  /** The groups: what has units in flight. */
  *counted(): Iterable<Counted> {
    for (const entry of this.#entries) if (entry instanceof Counted) yield entry
  }

  onFire(entry: Entry, f: () => void): void {
    this.#onFire.set(entry, f)
  }

  onStopping(entry: Entry, f: () => void): void {
    this.#onStopping.set(entry, f)
  }

  /** Calls, once, what `when` asked for; each failure goes to `onError`. */
  call(when: "fire" | "stopping", onError: (entry: Entry, error: unknown) => void): void {
    const hooks = when === "fire" ? this.#onFire : this.#onStopping
    for (const [entry, f] of [...hooks]) {
      hooks.delete(entry)
      try {
        f()
      } catch (error) {
        onError(entry, error)
      }
    }
  }

  /** What is not closed yet, in words. */
  stillOpen(): ReadonlyArray<string> {
    return this.#entries.filter((entry) => entry.state._tag !== "Closed").map((entry) => entry.describeOpen())
  }

  rows(now: number): ReadonlyArray<Row> {
    return this.#entries.map((entry) => entry.toRow(now))
  }
}
