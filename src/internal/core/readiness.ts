/**
 * Readiness beyond the phase: named checks (is the database reachable), each
 * an Effect under its own timeout, and a mark the program sets while it warms
 * up or sheds load. Checks run when somebody asks (a probe), all at once;
 * probes that ask meanwhile share the same run.
 *
 * @internal
 */
import { Duration, Effect, Exit, Fiber } from "effect"
import { bounded } from "./bounded.ts"

/** A check's last result. @internal */
type State = { readonly _tag: "unknown" } | { readonly _tag: "passing" } | { readonly _tag: "failing"; readonly reason: string }

/** @internal */
export interface Check {
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown>
  readonly timeout: Duration.Duration
}

/** Why the program is not ready, in words; empty when it is. @internal */
export type Verdict = ReadonlyArray<string>

const describe = (cause: unknown): string => {
  const text = cause instanceof Error ? cause.message : String(cause)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/** @internal */
export class Readiness {
  readonly #checks = new Map<Check, State>()
  readonly #runFork: <A>(effect: Effect.Effect<A>) => Fiber.Fiber<A>
  #mark: string | undefined
  readonly #markListeners = new Set<() => void>()
  #running: Fiber.Fiber<Verdict> | undefined

  constructor(runFork: <A>(effect: Effect.Effect<A>) => Fiber.Fiber<A>) {
    this.#runFork = runFork
  }

  get hasChecks(): boolean {
    return this.#checks.size > 0
  }

  /** The program's own word: not ready for `reason`; `undefined` once it said ready again. */
  get mark(): string | undefined {
    return this.#mark
  }

  /** Sets the program's word (`undefined`: ready again); logged when it changes. */
  setMark(reason: string | undefined): Effect.Effect<void> {
    return Effect.suspend(() => {
      const before = this.#mark
      this.#mark = reason
      if (reason === before) return Effect.void
      for (const listener of this.#markListeners) listener()
      return reason === undefined ? Effect.logInfo("marked ready") : Effect.logWarning(`marked not ready: ${reason}`)
    })
  }

  /** Calls `listener` whenever the mark changes; the returned function stops that. */
  onMark(listener: () => void): () => void {
    this.#markListeners.add(listener)
    return () => void this.#markListeners.delete(listener)
  }

  /**
   * Whether the program is ready beyond its phase — not marked, every check
   * passing — told to `then` once known (the checks run now, if any).
   */
  readyThen(then: (ready: boolean) => void): void {
    if (this.#mark !== undefined) return then(false)
    if (this.#checks.size === 0) return then(true)
    this.evaluateThen((verdict) => then(verdict.length === 0 && this.#mark === undefined))
  }

  /** Whether a check with this name is registered. */
  has(name: string): boolean {
    for (const check of this.#checks.keys()) if (check.name === name) return true
    return false
  }

  /** Adds a check; the returned function removes it. */
  add(check: Check): () => void {
    this.#checks.set(check, { _tag: "unknown" })
    return () => void this.#checks.delete(check)
  }

  /** {@link evaluate} for a caller outside Effect (a Node request handler). */
  evaluateThen(onVerdict: (verdict: Verdict) => void): void {
    this.#runFork(this.evaluate).addObserver((exit) => onVerdict(Exit.isSuccess(exit) ? exit.value : ["checks interrupted"]))
  }

  /** Runs every check (or joins the run in progress) and says which fail. */
  get evaluate(): Effect.Effect<Verdict> {
    return Effect.suspend(() => {
      // A run that is over (it may end within runFork, all checks being
      // synchronous) is not joined: a new one starts.
      if (this.#running === undefined || this.#running.pollUnsafe() !== undefined) {
        this.#running = this.#runFork(
          Effect.map(
            Effect.forEach([...this.#checks.keys()], (check) => this.#one(check), { concurrency: "unbounded" }),
            (reasons) => reasons.filter((reason): reason is string => reason !== undefined)
          )
        )
      }
      return Effect.map(Fiber.await(this.#running), (exit) => Exit.isSuccess(exit) ? exit.value : ["checks interrupted"])
    })
  }

  // A hung check is cut at its timeout, a throwing one fails: both count as
  // failing. The log says when a check changes state, not on every probe.
  #one(check: Check): Effect.Effect<string | undefined> {
    return bounded(Effect.suspend(() => check.run), Effect.sleep(check.timeout)).pipe(
      Effect.map((result) =>
        result._tag === "TimedOut"
          ? `timed out after ${Duration.format(check.timeout)}`
          : Exit.isSuccess(result.exit)
          ? undefined
          : describe(Exit.isFailure(result.exit) ? squash(result.exit) : undefined)
      ),
      Effect.tap((reason) => {
        const before = this.#checks.get(check)
        if (before === undefined) return Effect.void
        const after: State = reason === undefined ? { _tag: "passing" } : { _tag: "failing", reason }
        this.#checks.set(check, after)
        if (after._tag === "failing" && before._tag !== "failing") {
          return Effect.logWarning(`readiness check ${check.name} failing: ${after.reason}`)
        }
        if (after._tag === "passing" && before._tag === "failing") return Effect.logInfo(`readiness check ${check.name} passing again`)
        return Effect.void
      }),
      Effect.map((reason) => reason === undefined ? undefined : `${check.name}: ${reason}`)
    )
  }
}

const squash = (exit: Exit.Failure<unknown, unknown>): unknown => {
  const reason = exit.cause.reasons[0]
  if (reason === undefined) return "failed"
  return reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : "interrupted"
}
