/**
 * An example consumer (`npm run consumer`): a pool consuming one queue of the
 * broker named by BROKER_URL, with the brokers' stop contract
 * (docs/brokers.md). Each message's payload is the text of an integer id
 * (BullMQ: job data `{ "id": <integer> }`); its unit waits JOB_MS, inserts
 * `(job, pid)` into the table `results(job INTEGER, pid INTEGER)` of
 * RESULTS_DB (a SQLite file), and then the message is acknowledged.
 *
 * Settings:
 *
 * - BROKER_URL: `redis://host:port` (BullMQ), `amqp://user:pass@host:port`
 *   (RabbitMQ), `nats://host:port` (NATS JetStream)
 * - QUEUE: the queue (BullMQ, AMQP: declared durable if missing) or the
 *   JetStream stream (made if missing, subject `QUEUE`, durable pull consumer
 *   `QUEUE`)
 * - WORKERS (4), PREFETCH (messages fetched ahead of the workers; the
 *   broker module's default when unset), JOB_MS (100), RESULTS_DB
 *   (results.db)
 * - BROKER_TIMEOUT: the broker's own redelivery timeout for what a killed
 *   consumer held — BullMQ's `lockDuration` and `stalledInterval`, the
 *   `AckWait` of a JetStream consumer made here (RabbitMQ has none: it
 *   requeues when the connection drops). Default: the broker's (30 s).
 * - BULLMQ_MAX_STALLED: BullMQ's `maxStalledCount` (default 1, BullMQ's: a
 *   job whose consumer was killed twice fails for good)
 * - LOG_UNITS=1: a log line as each unit starts (`unit <id> started`)
 * - the shutdown's own: DRAIN_TIMEOUT, CLOSE_TIMEOUT, SHUTDOWN_TIMEOUT…
 *
 * Try it against a local RabbitMQ:
 *
 *   BROKER_URL=amqp://guest:guest@localhost QUEUE=jobs npm run consumer
 *
 * then SIGTERM it while it works: units in flight finish, prefetched messages
 * go back to the queue at once, and the report says so.
 */
import { Config, Context, Duration, Effect, Layer, Option, Stream } from "effect"
import { DatabaseSync } from "node:sqlite"
import { Closer, Main, Options, Quit } from "../src/index.ts"

class Results extends Context.Service<Results, DatabaseSync>()("examples/consumer/Results") {}

const config = Config.all({
  url: Config.String("BROKER_URL"),
  queue: Config.String("QUEUE").pipe(Config.withDefault("jobs")),
  workers: Config.Int("WORKERS").pipe(Config.withDefault(4)),
  prefetch: Config.Int("PREFETCH").pipe(Config.option),
  jobMs: Config.Int("JOB_MS").pipe(Config.withDefault(100)),
  db: Config.String("RESULTS_DB").pipe(Config.withDefault("results.db")),
  logUnits: Config.Boolean("LOG_UNITS").pipe(Config.withDefault(false)),
  brokerTimeout: Options.Duration("BROKER_TIMEOUT").pipe(Config.option),
  maxStalled: Config.Int("BULLMQ_MAX_STALLED").pipe(Config.withDefault(1))
})

const ResultsLive = Layer.unwrap(Effect.map(config, ({ db }) =>
  Closer.layer(Results, "results db", Effect.sync(() => {
    const database = new DatabaseSync(db, { timeout: 10_000 })
    database.exec("PRAGMA journal_mode = WAL")
    database.exec("CREATE TABLE IF NOT EXISTS results (job INTEGER, pid INTEGER)")
    return database
  }), (database) => () => database.close())
))

/** The unit: wait JOB_MS, insert the result; the message is acknowledged after it. */
const work = (id: number) =>
  Effect.gen(function*() {
    const { jobMs, logUnits } = yield* config.pipe(Effect.orDie)
    if (logUnits) yield* Effect.logInfo(`unit ${id} started`)
    yield* Effect.sleep(jobMs)
    const db = yield* Results
    db.prepare("INSERT INTO results (job, pid) VALUES (?, ?)").run(id, process.pid)
  })

const parseId = (text: string) => {
  const id = Number(text)
  return Number.isSafeInteger(id) ? Effect.succeed(id) : Effect.fail(new Error(`not an integer id: ${JSON.stringify(text)}`))
}

// Only the client of the broker in BROKER_URL is loaded.
const Consumer = Layer.unwrap(Effect.flatMap(config, ({ brokerTimeout, maxStalled, prefetch, queue, url, workers }) => {
  const common = { workers, prefetch: Option.getOrUndefined(prefetch) }
  const timeout = Option.getOrUndefined(brokerTimeout)
  const { protocol, hostname, port } = new URL(url)
  if (protocol === "redis:") {
    return Effect.map(Effect.promise(() => import("../src/BullMQ.ts")), (BullMQ) =>
      BullMQ.layer<{ readonly id: number }, Error, Results>(queue, (job) => Effect.flatMap(parseId(String(job.data.id)), work), {
        ...common,
        connection: { host: hostname, port: Number(port || 6379), maxRetriesPerRequest: null },
        lockDuration: timeout,
        bullmq: { maxStalledCount: maxStalled, ...(timeout === undefined ? {} : { stalledInterval: Duration.toMillis(timeout) }) }
      }))
  }
  if (protocol === "amqp:" || protocol === "amqps:") {
    return Effect.map(Effect.promise(() => import("../src/Amqp.ts")), (Amqp) =>
      Amqp.layer(queue, (message) => Effect.flatMap(parseId(message.content.toString()), work), {
        ...common,
        url,
        declare: { durable: true }
      }))
  }
  if (protocol === "nats:") {
    return Effect.map(Effect.promise(() => import("../src/Nats.ts")), (Nats) =>
      Nats.layer(queue, (message) => Effect.flatMap(parseId(message.string()), work), {
        ...common,
        servers: url,
        declare: { subjects: [queue] },
        ackWait: timeout
      }))
  }
  return Effect.die(new Error(`BROKER_URL: unknown scheme ${protocol} (redis:, amqp: or nats:)`))
}))

// READY once the program runs: scripts and tests wait for it.
const Ready = Layer.effectDiscard(
  Quit.phases.pipe(
    Stream.filter((change) => change.phase === "running"),
    Stream.take(1),
    Stream.runDrain,
    Effect.andThen(Effect.sync(() => console.log("READY"))),
    Effect.forkScoped
  )
)

Main.runMain(Layer.mergeAll(Consumer.pipe(Layer.provide(ResultsLive)), Ready))
