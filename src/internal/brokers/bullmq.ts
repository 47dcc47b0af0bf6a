/**
 * BullMQ behind the shared intake: BullMQ's own `Worker` fetches (its main
 * loop, its lock renewal, its completion and failure scripts), and its
 * processor hands each job to the pool, waiting until the pool settles it.
 *
 * - ack: the processor resolves; BullMQ moves the job to completed — before
 *   its worker closes, which the connection's closer awaits.
 * - hand back: `job.moveToWait(token)` (the job is back at the head of the
 *   wait list, its lock removed), then the processor throws `WaitingError`,
 *   which tells BullMQ the job has been moved already.
 * - reject: the processor throws the unit's error; BullMQ moves the job to
 *   failed, or retries it by its own `attempts` and `backoff`.
 * - stop fetching: `worker.close()` is started — BullMQ fetches nothing more,
 *   and waits for the jobs its processor still holds.
 *
 * @internal
 */
import type { Job, WorkerOptions } from "bullmq"
import { WaitingError, Worker } from "bullmq"
import type { Context } from "effect"
import { Duration, Effect } from "effect"
import { Intake } from "./intake.ts"
import { BrokerError, SettingRefused } from "./errors.ts"

/** A job held by BullMQ's processor until the pool settles it. @internal */
export interface Held<D> {
  readonly job: Job<D>
  readonly token: string
  readonly resolve: () => void
  readonly reject: (error: Error) => void
}

/**
 * The unit's error as BullMQ keeps it (`failedReason` is its message): a
 * tagged error without a message of its own is named by its tag and fields.
 * @internal
 */
export const toError = (error: unknown): Error => {
  if (error instanceof Error && error.message !== "") return error
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const { _tag, ...fields } = error as { readonly _tag: unknown }
    const detail = Object.keys(fields).length === 0 ? "" : ` ${JSON.stringify(fields)}`
    return Object.assign(new Error(`${String(_tag)}${detail}`), { cause: error })
  }
  return error instanceof Error ? error : new Error(String(error))
}

/** BullMQ's default lock duration (`lockDuration`). @internal */
export const DEFAULT_LOCK = Duration.seconds(30)

/** Refuses a lock shorter than the drain timeout, naming both. @internal */
export const checkLock = (lockDuration: Duration.Duration, drainTimeout: Duration.Duration): Effect.Effect<void, SettingRefused> =>
  Duration.isLessThan(lockDuration, drainTimeout)
    ? Effect.fail(
      new SettingRefused({
        broker: "BullMQ",
        setting: "lockDuration",
        value: Duration.format(lockDuration),
        against: `drain timeout ${Duration.format(drainTimeout)}`,
        expected: "the lock must last at least the drain timeout, so that no unit allowed to run until the drain deadline outlives its lock"
      })
    )
    : Effect.void

/** The BullMQ worker behind an intake. @internal */
export interface Consumer<D> {
  readonly intake: Intake<Held<D>>
  /** Starts BullMQ's main loop; a loop that fails fails the intake. */
  readonly run: () => void
  /** Closes the worker (waiting for the jobs its processor holds) and its connections; idempotent. */
  readonly close: () => Promise<void>
}

/** Creates the BullMQ worker (not yet running) and the intake its processor offers jobs to. @internal */
export const make = <D>(
  name: string,
  queue: string,
  options: WorkerOptions,
  context: Context.Context<never>
): Effect.Effect<Consumer<D>, BrokerError> =>
  Effect.tryPromise({
    try: async () => {
      let closing: Promise<void> | undefined
      const close = () => closing ??= worker.close()
      const intake = new Intake<Held<D>>(name, {
        broker: "BullMQ",
        // A job BullMQ fetches after this still reaches the processor: the intake hands it back.
        stopFetching: () => {
          void close()
          return Promise.resolve()
        },
        ack: (held) => held.resolve(),
        handBack: async (held) => {
          try {
            await held.job.moveToWait(held.token)
          } finally {
            held.reject(new WaitingError())
          }
        },
        reject: (held, error) => held.reject(toError(error))
      }, context)
      const worker = new Worker<D>(
        queue,
        (job, token) =>
          new Promise<void>((resolve, reject) => {
            if (token === undefined) return reject(new Error("BullMQ gave a job without a lock token"))
            intake.offer({ job, token, resolve, reject })
          }),
        { ...options, autorun: false }
      )
      // An 'error' event nobody listens to would crash the process.
      worker.on("error", (error) => intake.log(`BullMQ worker error: ${error.message}`))
      await worker.waitUntilReady()
      return {
        intake,
        close,
        run: () => {
          worker.run().catch((cause: unknown) =>
            intake.fail(new BrokerError({ broker: "BullMQ", operation: "running the worker", cause }))
          )
        }
      }
    },
    catch: (cause) => new BrokerError({ broker: "BullMQ", operation: `connecting the worker of queue ${queue}`, cause })
  })
