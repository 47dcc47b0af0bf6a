/**
 * The job queue's SQL, one text per statement and dialect. The table is the
 * same on both (times are epoch milliseconds):
 *
 *   id, payload, state (pending | claimed | done | failed), attempts,
 *   owner (the process holding the claim), claim (the claim's token, kept on
 *   the row once it is done: the fence), claimed_at, lease_until,
 *   enqueued_at, done_at, error
 *
 * SQLite takes the time from the process (`now`, from Effect's Clock: one
 * machine); PostgreSQL from the server's clock, so that processes on several
 * machines agree on when a lease has passed whatever their own clocks say.
 *
 * The claim is one statement per dialect. PostgreSQL locks the rows it picks
 * with `FOR UPDATE SKIP LOCKED`, so claimers on any number of machines never
 * wait for each other nor pick the same row. SQLite serialises writers; its
 * claim is an `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`, since
 * `UPDATE … LIMIT` needs SQLITE_ENABLE_UPDATE_DELETE_LIMIT, which Node's
 * bundled SQLite lacks (effect #7266). Expired claims come first: a steady
 * stream of new jobs must not starve them.
 *
 * @internal
 */

/** @internal */
export type Dialect = "sqlite" | "pg"

/** A statement's text and its parameters. @internal */
export type Query = readonly [text: string, params: ReadonlyArray<unknown>]

/** The statements of one table in one dialect; `now` is ignored on PostgreSQL (the server's clock). @internal */
export interface Statements {
  readonly dialect: Dialect
  readonly schema: ReadonlyArray<string>
  /** Inserts, in chunks of at most a few thousand rows; each returns the ids. */
  readonly enqueue: (payloads: ReadonlyArray<string>, now: number) => ReadonlyArray<Query>
  readonly claim: (owner: string, token: string, n: number, now: number, leaseMillis: number) => Query
  readonly complete: (id: number, token: string, now: number) => Query
  /** Several done marks in one statement (completions with no `commit`); returns the ids it marked. */
  readonly completeMany: (claims: ReadonlyArray<readonly [id: number, token: string]>, now: number) => Query
  readonly fail: (id: number, token: string, error: string, now: number) => Query
  /** The row's state and token: was a completion whose answer was lost ours? */
  readonly settled: (id: number) => Query
  readonly renewOwned: (owner: string, now: number, leaseMillis: number) => Query
  readonly renew: (id: number, token: string, now: number, leaseMillis: number) => Query
  /** Gives back claims never started: the attempt is not counted. */
  readonly releaseUnstarted: (owner: string, ids: ReadonlyArray<number>) => Query
  /** Gives back every claim of this owner (cut, or started and not finished): the attempt counts. */
  readonly releaseOwned: (owner: string) => Query
  readonly stats: Query
  /** PostgreSQL: the channel enqueues notify. */
  readonly channel: string
}

/** Table names are interpolated into the SQL: only plain identifiers are allowed. @internal */
export const validTable = (table: string): boolean => /^[A-Za-z_][A-Za-z0-9_]{0,39}$/.test(table)

const settle = "owner = NULL, lease_until = NULL"
const states = "state IN ('pending', 'claimed', 'done', 'failed')"

// The table and its two partial indexes, the same on both dialects but for the
// id column and the type of the instants (epoch milliseconds).
const schema = (t: string, id: string, instant: string): ReadonlyArray<string> => [
  `CREATE TABLE IF NOT EXISTS ${t} (
    id ${id},
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (${states}),
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT, claim TEXT, claimed_at ${instant}, lease_until ${instant},
    enqueued_at ${instant} NOT NULL, done_at ${instant}, error TEXT)`,
  `CREATE INDEX IF NOT EXISTS ${t}_pending ON ${t} (id) WHERE state = 'pending'`,
  `CREATE INDEX IF NOT EXISTS ${t}_claimed ON ${t} (lease_until) WHERE state = 'claimed'`
]

/** @internal */
export const sqlite = (t: string): Statements => ({
  dialect: "sqlite",
  channel: "",
  schema: schema(t, "INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER"),
  enqueue: (payloads, now) => {
    // SQLite allows 32,766 parameters in one statement.
    const queries: Array<Query> = []
    for (let start = 0; start < payloads.length; start += 5_000) {
      const chunk = payloads.slice(start, start + 5_000)
      queries.push([
        `INSERT INTO ${t} (payload, enqueued_at) VALUES ${chunk.map(() => "(?, ?)").join(", ")} RETURNING id`,
        chunk.flatMap((payload) => [payload, now])
      ])
    }
    return queries
  },
  claim: (owner, token, n, now, lease) => [
    `UPDATE ${t} SET state = 'claimed', owner = ?, claim = ?, claimed_at = ?, lease_until = ?, attempts = attempts + 1
     WHERE id IN (
       SELECT id FROM (SELECT id FROM ${t} WHERE state = 'claimed' AND lease_until <= ? ORDER BY lease_until LIMIT ?)
       UNION ALL
       SELECT id FROM (SELECT id FROM ${t} WHERE state = 'pending' ORDER BY id LIMIT ?)
       LIMIT ?)
     RETURNING id, payload, attempts`,
    [owner, token, now, now + lease, now, n, n, n]
  ],
  complete: (id, token, now) => [
    `UPDATE ${t} SET state = 'done', done_at = ?, ${settle} WHERE id = ? AND state = 'claimed' AND claim = ? RETURNING id`,
    [now, id, token]
  ],
  completeMany: (claims, now) => [
    `UPDATE ${t} SET state = 'done', done_at = ?, ${settle}
     WHERE state = 'claimed' AND (id, claim) IN (VALUES ${claims.map(() => "(?, ?)").join(", ")}) RETURNING id`,
    [now, ...claims.flat()]
  ],
  fail: (id, token, error, now) => [
    `UPDATE ${t} SET state = 'failed', done_at = ?, error = ?, ${settle}
     WHERE id = ? AND state = 'claimed' AND claim = ? RETURNING id`,
    [now, error, id, token]
  ],
  settled: (id) => [`SELECT state, claim FROM ${t} WHERE id = ?`, [id]],
  renewOwned: (owner, now, lease) => [
    `UPDATE ${t} SET lease_until = ? WHERE state = 'claimed' AND owner = ?`,
    [now + lease, owner]
  ],
  renew: (id, token, now, lease) => [
    `UPDATE ${t} SET lease_until = ? WHERE id = ? AND state = 'claimed' AND claim = ? RETURNING id`,
    [now + lease, id, token]
  ],
  releaseUnstarted: (owner, ids) => [
    `UPDATE ${t} SET state = 'pending', claim = NULL, claimed_at = NULL, attempts = attempts - 1, ${settle}
     WHERE state = 'claimed' AND owner = ? AND id IN (${ids.map(() => "?").join(", ")}) RETURNING id`,
    [owner, ...ids]
  ],
  releaseOwned: (owner) => [
    `UPDATE ${t} SET state = 'pending', claim = NULL, claimed_at = NULL, ${settle}
     WHERE state = 'claimed' AND owner = ? RETURNING id`,
    [owner]
  ],
  stats: [`SELECT state, count(*) AS n FROM ${t} GROUP BY state`, []]
})

/** The server's clock, in epoch milliseconds. */
const NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint"

/** @internal */
export const pg = (t: string): Statements => ({
  dialect: "pg",
  channel: `effect_graceful_${t}`,
  schema: schema(t, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT"),
  // One JSON array parameter, any number of rows, and one notification: it goes out at commit, to every listening machine.
  enqueue: (payloads) => [[
    `WITH added AS (
       INSERT INTO ${t} (payload, enqueued_at)
       SELECT p, ${NOW} FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS a(p, n) ORDER BY n
       RETURNING id)
     SELECT a.id FROM added AS a CROSS JOIN (SELECT pg_notify('effect_graceful_${t}', '')) AS n`,
    [JSON.stringify(payloads)]
  ]],
  // Two CTEs lock what they pick, skipping rows another claimer holds; the expired first.
  claim: (owner, token, n, _now, lease) => [
    `WITH expired AS (
       SELECT id FROM ${t} WHERE state = 'claimed' AND lease_until <= ${NOW}
       ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED),
     fresh AS (
       SELECT id FROM ${t} WHERE state = 'pending' ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED),
     picked AS (
       SELECT id FROM (SELECT id, 0 AS k FROM expired UNION ALL SELECT id, 1 AS k FROM fresh) AS c ORDER BY k LIMIT $3)
     UPDATE ${t} AS j SET state = 'claimed', owner = $1, claim = $2, claimed_at = ${NOW},
       lease_until = ${NOW} + $4, attempts = j.attempts + 1
     FROM picked WHERE j.id = picked.id
     RETURNING j.id, j.payload, j.attempts`,
    [owner, token, n, lease]
  ],
  complete: (id, token) => [
    `UPDATE ${t} SET state = 'done', done_at = ${NOW}, ${settle}
     WHERE id = $1 AND state = 'claimed' AND claim = $2 RETURNING id`,
    [id, token]
  ],
  completeMany: (claims) => [
    `UPDATE ${t} AS j SET state = 'done', done_at = ${NOW}, ${settle}
     FROM (SELECT (c->>0)::bigint AS id, c->>1 AS claim FROM jsonb_array_elements($1::jsonb) AS c) AS v
     WHERE j.id = v.id AND j.claim = v.claim AND j.state = 'claimed' RETURNING j.id`,
    [JSON.stringify(claims)]
  ],
  fail: (id, token, error) => [
    `UPDATE ${t} SET state = 'failed', done_at = ${NOW}, error = $3, ${settle}
     WHERE id = $1 AND state = 'claimed' AND claim = $2 RETURNING id`,
    [id, token, error]
  ],
  settled: (id) => [`SELECT state, claim FROM ${t} WHERE id = $1`, [id]],
  renewOwned: (owner, _now, lease) => [
    `UPDATE ${t} SET lease_until = ${NOW} + $2 WHERE state = 'claimed' AND owner = $1`,
    [owner, lease]
  ],
  renew: (id, token, _now, lease) => [
    `UPDATE ${t} SET lease_until = ${NOW} + $3 WHERE id = $1 AND state = 'claimed' AND claim = $2 RETURNING id`,
    [id, token, lease]
  ],
  // A release wakes idle workers on every machine (one notification per transaction: PostgreSQL folds the same
  // channel and payload into one), only if it released something.
  releaseUnstarted: (owner, ids) => [
    `WITH released AS (
       UPDATE ${t} SET state = 'pending', claim = NULL, claimed_at = NULL, attempts = attempts - 1, ${settle}
       WHERE state = 'claimed' AND owner = $1
         AND id IN (SELECT (jsonb_array_elements_text($2::jsonb))::bigint) RETURNING id)
     SELECT r.id FROM released AS r, LATERAL (SELECT pg_notify('effect_graceful_${t}', '')) AS n`,
    [owner, JSON.stringify(ids)]
  ],
  releaseOwned: (owner) => [
    `WITH released AS (
       UPDATE ${t} SET state = 'pending', claim = NULL, claimed_at = NULL, ${settle}
       WHERE state = 'claimed' AND owner = $1 RETURNING id)
     SELECT r.id FROM released AS r, LATERAL (SELECT pg_notify('effect_graceful_${t}', '')) AS n`,
    [owner]
  ],
  stats: [`SELECT state, count(*) AS n FROM ${t} GROUP BY state`, []]
})
