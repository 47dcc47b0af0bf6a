/**
 * The Effect HTTP API of the example service, served by `Http.layer`:
 *
 *   GET  /work?ms=N     answers 200 after N ms (to try drains by hand)
 *   POST /jobs?n=N      enqueues N jobs, answers 202 with their count
 *   GET  /jobs/stats    { pending, claimed, done, failed } as JSON
 *   GET  /readyz        200 while running; 503 from the quit event on
 *   GET  /livez         200 until exit
 *
 * Bad parameters get a 400 that says which and why.
 */
import { Data, Effect, Layer, Result, Schema } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"
import { Http, JobQueue } from "../../src/index.ts"

class BadParameter extends Data.TaggedError("BadParameter")<{ readonly name: string; readonly reason: string }> {}

const parameter = (
  request: HttpServerRequest.HttpServerRequest,
  name: string,
  range: { readonly min: number; readonly max: number; readonly fallback?: number }
): Effect.Effect<number, BadParameter> => {
  const text = new URL(request.url, "http://localhost").searchParams.get(name)
  if (text === null && range.fallback !== undefined) return Effect.succeed(range.fallback)
  const decoded = Schema.decodeUnknownResult(Schema.NumberFromString.check(Schema.isInt()))(text ?? "")
  if (Result.isFailure(decoded) || decoded.success < range.min || decoded.success > range.max) {
    return Effect.fail(new BadParameter({ name, reason: `expected an integer from ${range.min} to ${range.max}` }))
  }
  return Effect.succeed(decoded.success)
}

const badRequest = (error: BadParameter) =>
  Effect.succeed(HttpServerResponse.text(`bad parameter ${error.name}: ${error.reason}\n`, { status: 400 }))

const Work = HttpRouter.add("GET", "/work", (request) =>
  parameter(request, "ms", { min: 0, max: 60_000, fallback: 0 }).pipe(
    Effect.flatMap((ms) => Effect.as(Effect.sleep(ms), HttpServerResponse.text(`worked ${ms} ms\n`))),
    Effect.catchTag("BadParameter", badRequest)
  ))

const Enqueue = HttpRouter.add("POST", "/jobs", (request) =>
  parameter(request, "n", { min: 1, max: 100_000, fallback: 1 }).pipe(
    Effect.flatMap((n) => JobQueue.enqueue(Array.from({ length: n }, (_, i) => `job ${i + 1} of ${n}`))),
    Effect.map((ids) => HttpServerResponse.jsonUnsafe({ enqueued: ids.length }, { status: 202 })),
    Effect.catchTag("BadParameter", badRequest)
  ))

const Stats = HttpRouter.add("GET", "/jobs/stats", Effect.map(JobQueue.stats, (stats) => HttpServerResponse.jsonUnsafe(stats)))

/** The API on `port` (of `host`, default all interfaces), with readiness and liveness on the same port. */
export const Api = (port: number, host?: string, reusePort = false) =>
  HttpRouter.serve(Layer.mergeAll(Work, Enqueue, Stats), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(Http.layer(() => createServer(), { port, host, reusePort, name: "api", health: true }))
  )
