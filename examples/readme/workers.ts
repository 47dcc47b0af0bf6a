import { Effect, Layer, Queue, Schedule } from "effect"
import { Worker } from "effect-graceful"

declare const sendEmail: (to: string) => Effect.Effect<void, Error>

// A pool of 8 consumers of a queue: each take races the quit event; a unit that has
// started runs to completion; failures are retried on a Schedule, then logged.
export const Emails = Layer.effectDiscard(Effect.gen(function*() {
  const queue = yield* Queue.unbounded<string>()
  yield* Worker.consume("emails", Worker.fromQueue(queue), sendEmail, {
    workers: 8,
    onFailure: Worker.retry(Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 3 })))
  })
}))
