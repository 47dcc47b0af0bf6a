/**
 * What every broker source shares: the deliveries between the broker's
 * callback and the pool's workers, each settled exactly once — acknowledged
 * after its unit succeeded, handed back (redelivered at once) when no worker
 * took it before the pool halted or when its unit was cut, or given up on —
 * and the close that hands back whatever is left before the connection
 * closes.
 *
 * A delivery is `buffered` (fetched, no worker has it), `taken` (a worker has
 * it, its unit has not begun), `running` (in a unit), or `settled`.
 *
 * @internal
 */
import type { Context } from "effect"
import { Cause, Duration, Effect, Exit, Metric } from "effect"
import { constVoid } from "effect/Function"
import { BrokerError } from "./errors.ts"

/** How a broker settles one message; each is called at most once per delivery. @internal */
export interface Adapter<M> {
  /** The broker's name in logs and errors: "BullMQ", "AMQP", "NATS". */
  readonly broker: string
  /** Stops the broker from delivering more; resolves once nothing more can arrive. */
  readonly stopFetching: () => Promise<void>
  readonly ack: (message: M) => Promise<void> | void
  readonly handBack: (message: M) => Promise<void> | void
  readonly reject: (message: M, error: unknown) => Promise<void> | void
  /** Called after each settlement: room for one more (a pull loop asks for more). */
  readonly onSettled?: (() => void) | undefined
}

type State = "buffered" | "taken" | "running" | "settled"

/** One message on its way through the pool. @internal */
export class Delivery<M> {
  readonly message: M
  state: State = "buffered"
  constructor(message: M) {
    this.message = message
  }
}

type Settlement = "ack" | "handBack" | "reject"

const OUTCOMES: Record<Settlement, string> = { ack: "acked", handBack: "handed back", reject: "rejected" }

// Read from plain counts when metrics are collected, as the in-flight series
// are: settling stays an integer increment per message.
const registerSeries = (worker: string, counts: Record<Settlement, number>, context: Context.Context<never>) => {
  for (const how of Object.keys(OUTCOMES) as Array<Settlement>) {
    const counter = Metric.counter("effect_graceful_broker_messages_total", {
      description: "Broker messages settled, per worker and outcome (acked, handed back, rejected)",
      incremental: true,
      attributes: { worker, outcome: OUTCOMES[how] }
    })
    Metric.registerUnsafe(counter, context, {
      get: () => ({ count: counts[how], incremental: true }),
      update: constVoid,
      modify: constVoid
    })
  }
}

// A waiting worker's resume. It is resumed with `take` itself, evaluated in the
// worker: the delivery stays in the buffer until a worker takes it, so a
// resume that comes to nothing (its worker interrupted) drops nothing.
type Taker<M> = (effect: Effect.Effect<Delivery<M>, BrokerError>) => void

/** @internal */
export class Intake<M> {
  readonly name: string
  readonly #adapter: Adapter<M>
  readonly #runFork: (effect: Effect.Effect<void>) => void
  // A queue with a moving head: taken slots are emptied, and the array is compacted now and then.
  readonly #buffer: Array<Delivery<M> | undefined> = []
  #head = 0
  readonly #takers: Array<Taker<M>> = []
  readonly #unsettled = new Set<Delivery<M>>()
  readonly #pending = new Set<Promise<void>>()
  readonly #settled: Record<Settlement, number> = { ack: 0, handBack: 0, reject: 0 }
  #halted = false
  #stopped: Promise<void> | undefined
  #failure: BrokerError | undefined
  /** Handed back: fetched and never taken (at the halt or after it), cut, left at close. */
  readonly handedBack = { prefetched: 0, cut: 0, atClose: 0 }

  constructor(name: string, adapter: Adapter<M>, context: Context.Context<never>) {
    this.name = name
    this.#adapter = adapter
    const runFork = Effect.runForkWith(context)
    this.#runFork = (effect) => void runFork(effect)
    registerSeries(name, this.#settled, context)
  }

  /** Logs a warning under the intake's name, from plain JS. */
  readonly log = (message: string): void => this.#runFork(Effect.logWarning(`${this.name}: ${message}`))

  /** Deliveries fetched and not settled: buffered, taken or in a unit. */
  get held(): number {
    return this.#unsettled.size
  }

  /** Calls `f` on the message of every delivery held. */
  forEachHeld(f: (message: M) => void): void {
    for (const delivery of this.#unsettled) f(delivery.message)
  }

  get halted(): boolean {
    return this.#halted
  }

  /** The broker delivered `message`: to a waiting worker, to the buffer, or — once halted — straight back. */
  readonly offer = (message: M): void => {
    const delivery = new Delivery(message)
    this.#unsettled.add(delivery)
    if (this.#halted) {
      this.handedBack.prefetched++
      this.#settle(delivery, "handBack")
      return
    }
    this.#buffer.push(delivery)
    if (this.#takers.length > 0 && !this.#waking) {
      this.#waking = true
      queueMicrotask(this.#wake)
    }
  }

  // Waiting workers are woken once the broker's callback is done (a socket
  // read brings several deliveries), one after the other while deliveries
  // are left: a worker whose unit does not wait takes the next delivery
  // itself, so a burst costs one wait and one resume, not one per message.
  #waking = false
  readonly #wake = (): void => {
    this.#waking = false
    while (this.#head < this.#buffer.length) {
      const taker = this.#takers.shift()
      if (taker === undefined) return
      taker(this.take)
    }
  }

  /** The connection or the consumer is gone: workers waiting and to come fail with `error`. */
  readonly fail = (error: BrokerError): void => {
    if (this.#failure !== undefined || this.#halted) return
    this.#failure = error
    for (const taker of this.#takers.splice(0)) taker(Effect.fail(error))
  }

  // Only called while the head is inside the buffer.
  #next(): Delivery<M> {
    const delivery = this.#buffer[this.#head] as Delivery<M>
    this.#buffer[this.#head++] = undefined
    if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
      this.#buffer.splice(0, this.#head)
      this.#head = 0
    }
    delivery.state = "taken"
    return delivery
  }

  // No canceller: a waiting worker is interrupted only by the pool's halt,
  // which halts the intake at once (its takers are dropped, and a delivery
  // after it goes straight back); and a resume that comes too late takes
  // nothing (see Taker). So a wait allocates nothing but Effect's own.
  readonly #wait: Effect.Effect<Delivery<M>, BrokerError> = Effect.callback<Delivery<M>, BrokerError>((resume) => {
    this.#takers.push(resume)
  })

  /** A worker's wait for its next delivery. */
  readonly take: Effect.Effect<Delivery<M>, BrokerError> = Effect.suspend(() => {
    if (this.#failure !== undefined) return Effect.fail(this.#failure)
    if (this.#head < this.#buffer.length) return Effect.succeed(this.#next())
    return this.#wait
  })

  /**
   * The pool stopped taking: stop fetching, and hand back at once what was
   * fetched and not taken — and whatever arrives until the broker confirms
   * that nothing more will. Idempotent; synchronous, as the pool calls it.
   */
  readonly halt = (): void => {
    if (this.#halted) return
    this.#halted = true
    this.#takers.length = 0
    // Stop first: the broker must not give the handed-back messages to this consumer again.
    this.#stopped = this.#attempt("stop fetching", () => this.#adapter.stopFetching()) ?? Promise.resolve()
    while (this.#head < this.#buffer.length) {
      this.handedBack.prefetched++
      this.#settle(this.#next(), "handBack")
    }
    const stopped = this.#stopped
    this.#runFork(
      Effect.promise(() => stopped.then(() => Promise.all(this.#pending))).pipe(
        Effect.andThen(Effect.suspend(() =>
          Effect.logInfo(`${this.name}: intake stopped; ${this.handedBack.prefetched} prefetched messages handed back`)
        ))
      )
    )
  }

  /**
   * The unit of a delivery: `handler` on its message, then the
   * acknowledgement, sent and awaited inside the unit; a unit cut (or
   * otherwise interrupted) hands its message back. A failure is left to the
   * worker's policy (a retry runs this again; giving up calls {@link reject}).
   */
  //
  // The pool calls it as the unit begins, in the worker (a `Worker` source's
  // `process`): the state moves here, with no Effect of its own around it.
  unit<E, R>(handler: (message: M) => Effect.Effect<unknown, E, R>): (delivery: Delivery<M>) => Effect.Effect<unknown, E, R> {
    return (delivery) => {
      // Handed back at close (the pool had stopped): nothing to run.
      if (delivery.state === "settled") return Effect.void
      delivery.state = "running"
      let effect: Effect.Effect<unknown, E, R>
      try {
        effect = handler(delivery.message)
      } catch (error) {
        effect = Effect.die(error)
      }
      return Effect.onExit(effect, (exit) => {
        if (Exit.isSuccess(exit)) return this.#settle(delivery, "ack")
        if (Cause.hasInterruptsOnly(exit.cause)) {
          if (delivery.state !== "settled") this.handedBack.cut++
          return this.#settle(delivery, "handBack")
        }
        return Effect.void
      })
    }
  }

  /** The worker's policy gave up on a delivery: the broker's own way to dead-letter it. */
  readonly reject = (delivery: Delivery<M>, cause: Cause.Cause<unknown>): Effect.Effect<void> =>
    this.#settle(delivery, "reject", Cause.squash(cause))

  /**
   * The source's close, after the pool has drained: halts if nothing did,
   * hands back every delivery still unsettled (taken and never begun, left
   * by a retry that closing cut, left by a policy that failed the app, stuck
   * in a unit past the cut), and waits for every settlement to be sent —
   * before the connection closes. Bounded by `limit`.
   */
  close(limit: Duration.Duration): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.halt()
      const stopped = this.#stopped ?? Promise.resolve()
      const all = stopped.then(() => {
        for (const delivery of this.#unsettled) {
          this.handedBack.atClose++
          this.#settle(delivery, "handBack")
        }
        return Promise.all(this.#pending)
      })
      return Effect.promise(() => all).pipe(
        Effect.timeoutOption(limit),
        Effect.flatMap((done) => {
          const { atClose, cut, prefetched } = this.handedBack
          const counts = `${prefetched} prefetched, ${cut} cut, ${atClose} left at close`
          return done._tag === "Some"
            ? Effect.logInfo(`${this.name}: closed; handed back ${counts}`)
            : Effect.logWarning(
              `${this.name}: settlements not confirmed within ${Duration.format(limit)}; handed back ${counts}`
            )
        })
      )
    })
  }

  #settle(delivery: Delivery<M>, how: Settlement, error?: unknown): Effect.Effect<void> {
    if (delivery.state === "settled") return Effect.void
    delivery.state = "settled"
    this.#unsettled.delete(delivery)
    this.#settled[how]++
    const adapter = this.#adapter
    const message = delivery.message
    // The hot path — an ack — calls the adapter straight: no closure per message.
    let result: Promise<void> | void = undefined
    try {
      result = how === "ack" ? adapter.ack(message) : how === "handBack" ? adapter.handBack(message) : adapter.reject(message, error)
    } catch (cause) {
      this.#failed(how, cause)
    }
    adapter.onSettled?.()
    if (result === undefined) return Effect.void
    const sent = this.#track(how, result)
    return Effect.promise(() => sent)
  }

  // Runs a broker call; one that returns a Promise is tracked until it
  // settles (a synchronous one — amqplib's ack, a NATS publish — costs
  // nothing more). A failure is logged, never thrown.
  #attempt(operation: string, call: () => Promise<void> | void): Promise<void> | undefined {
    let result: Promise<void> | void
    try {
      result = call()
    } catch (cause) {
      this.#failed(operation, cause)
      return undefined
    }
    return result === undefined ? undefined : this.#track(operation, result)
  }

  #track(operation: string, result: Promise<void>): Promise<void> {
    const tracked: Promise<void> = result.then(
      () => void this.#pending.delete(tracked),
      (cause: unknown) => {
        this.#pending.delete(tracked)
        this.#failed(operation, cause)
      }
    )
    this.#pending.add(tracked)
    return tracked
  }

  #failed(operation: string, cause: unknown): void {
    const error = new BrokerError({ broker: this.#adapter.broker, operation, cause })
    this.#runFork(Effect.logWarning(`${this.name}: ${error.message}`))
  }
}
