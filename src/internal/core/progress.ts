/**
 * What a shutdown is still waiting on, while it runs: every resource not
 * closed yet with its units in flight, and the time left to the next
 * deadline. Read from the registry when asked; nothing is kept per unit.
 *
 * @internal
 */
import { Duration } from "effect"
import { Counted, type Entry } from "./registry.ts"

/** One resource still open. @internal */
export interface Open {
  readonly name: string
  readonly kind: string
  /** `open`: it still takes work (a server listens); `closing`: its intake stopped, its drain or close runs. */
  readonly state: "open" | "closing"
  /** Units in flight, for a group (server, worker pool, tracked tasks); `undefined` for a closer. */
  readonly inFlight: number | undefined
}

/** The deadlines, by the name of the moment they end, as the progress names them. @internal */
export type Next = "stopping" | "drain" | "close" | "shutdown"

/** @internal */
export interface Progress {
  /** Time since the quit event. */
  readonly elapsed: Duration.Duration
  readonly open: ReadonlyArray<Open>
  /** The next deadline still ahead, and the time left to it; `undefined` past the shutdown deadline. */
  readonly next: { readonly deadline: Next; readonly left: Duration.Duration } | undefined
}

interface Source {
  readonly entries: ReadonlyArray<Entry>
  readonly deadlines: { readonly fired: number } & { readonly [D in Next]: number }
  readonly now: number
}

const ORDER: ReadonlyArray<Next> = ["stopping", "drain", "close", "shutdown"]

/** @internal */
export const snapshot = ({ deadlines, entries, now }: Source): Progress => {
  const open: Array<Open> = []
  for (const entry of entries) {
    if (entry.state._tag === "Closed") continue
    open.push({
      name: entry.name,
      kind: entry.kind,
      state: entry.intakeStopped ? "closing" : "open",
      inFlight: entry instanceof Counted ? entry.inFlight.count : undefined
    })
  }
  const deadline = ORDER.find((name) => deadlines[name] > now)
  return {
    elapsed: Duration.millis(now - deadlines.fired),
    open,
    next: deadline === undefined ? undefined : { deadline, left: Duration.millis(deadlines[deadline] - now) }
  }
}

const WORDS: { readonly [D in Next]: string } = {
  stopping: "the end of the drain delay",
  drain: "the drain deadline",
  close: "the close deadline",
  shutdown: "the shutdown deadline"
}

const seconds = (duration: Duration.Duration) => `${(Duration.toMillis(duration) / 1000).toFixed(1)} s`

/** The log line: `shutting down for 3.0 s; waiting on api (http, closing, 2 in flight); 17.0 s to the drain deadline`. @internal */
export const describe = (progress: Progress): string => {
  const open = progress.open.map((resource) => {
    const parts = [resource.kind, resource.state === "closing" ? "closing" : "not yet closing"]
    if (resource.inFlight !== undefined && resource.inFlight > 0) parts.push(`${resource.inFlight} in flight`)
    return `${resource.name} (${parts.join(", ")})`
  })
  const next = progress.next === undefined
    ? "past the shutdown deadline"
    : `${seconds(progress.next.left)} to ${WORDS[progress.next.deadline]}`
  return `shutting down for ${seconds(progress.elapsed)}; waiting on ${open.length === 0 ? "nothing" : open.join(", ")}; ${next}`
}
