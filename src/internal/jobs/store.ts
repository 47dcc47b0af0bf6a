/**
 * The SQL behind `JobQueue`, on `node:sqlite`. Synchronous on purpose: every
 * state change is one statement or one transaction that no other fiber can
 * interleave with, so a claim, a done mark or a release is all-or-nothing.
 *
 * States: `pending → claimed → done | failed`; `claimed → pending` when the
 * owner releases it at a clean shutdown; a claim whose lease has passed (its
 * owner died) is claimable again.
 *
 * @internal
 */
import { randomUUID } from "node:crypto"
import type { DatabaseSync, StatementSync } from "node:sqlite"

/** @internal */
export interface Job {
  readonly id: number
  readonly payload: string
  /** How many times it has been claimed, this claim included. */
  readonly attempts: number
  /** This claim's token: only its holder can mark the job done. */
  readonly claim: string
}

/** @internal */
export interface Stats {
  readonly pending: number
  readonly claimed: number
  readonly done: number
  readonly failed: number
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    claim TEXT,
    claimed_at INTEGER,
    lease_until INTEGER,
    enqueued_at INTEGER NOT NULL,
    done_at INTEGER,
    error TEXT
  );
  CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (id) WHERE state = 'pending';
  CREATE INDEX IF NOT EXISTS jobs_claimed ON jobs (lease_until) WHERE state = 'claimed';
`

/**
 * Opens (or makes) the queue in the SQLite file at `path`. `node:sqlite` is
 * loaded here, not when the library is imported: programs that never open a
 * queue do not load it (it is experimental, and warns, before Node 24).
 *
 * @internal
 */
export const open = async (path: string): Promise<Store> => {
  const { DatabaseSync } = await import("node:sqlite")
  // The busy timeout covers another process holding the write lock briefly.
  const db = new DatabaseSync(path, { timeout: 5_000 })
  try {
    return new Store(db)
  } catch (error) {
    db.close()
    throw error
  }
}

/** @internal */
export class Store {
  readonly db: DatabaseSync
  /** This process's claims carry it, so that a clean shutdown releases only its own. */
  readonly owner = randomUUID()
  #claims = 0
  readonly #insert: StatementSync
  readonly #claim: StatementSync
  readonly #done: StatementSync
  readonly #fail: StatementSync
  readonly #renew: StatementSync
  readonly #release: StatementSync
  readonly #stats: StatementSync

  constructor(db: DatabaseSync) {
    this.db = db
    // WAL with FULL sync: a committed done mark survives a crash of the process and of the machine.
    this.db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
    this.db.exec(SCHEMA)
    this.#insert = this.db.prepare("INSERT INTO jobs (payload, enqueued_at) VALUES (?, ?) RETURNING id")
    // Expired claims first: their jobs waited longest; a steady stream of new jobs must not starve them.
    this.#claim = this.db.prepare(`
      UPDATE jobs SET state = 'claimed', owner = :owner, claim = :claim, claimed_at = :now,
        lease_until = :until, attempts = attempts + 1
      WHERE id = coalesce(
        (SELECT id FROM jobs WHERE state = 'claimed' AND lease_until <= :now ORDER BY lease_until LIMIT 1),
        (SELECT id FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1))
      RETURNING id, payload, attempts`)
    const settle = "owner = NULL, claim = NULL, lease_until = NULL"
    this.#done = this.db.prepare(
      `UPDATE jobs SET state = 'done', done_at = :now, ${settle} WHERE id = :id AND state = 'claimed' AND claim = :claim`
    )
    this.#fail = this.db.prepare(
      `UPDATE jobs SET state = 'failed', done_at = :now, error = :error, ${settle}
       WHERE id = :id AND state = 'claimed' AND claim = :claim`
    )
    this.#renew = this.db.prepare("UPDATE jobs SET lease_until = :until WHERE state = 'claimed' AND owner = :owner")
    this.#release = this.db.prepare(
      `UPDATE jobs SET state = 'pending', claimed_at = NULL, ${settle} WHERE state = 'claimed' AND owner = :owner`
    )
    this.#stats = this.db.prepare("SELECT state, count(*) AS n FROM jobs GROUP BY state")
  }

  enqueue(payloads: ReadonlyArray<string>, now: number): ReadonlyArray<number> {
    return this.transaction(() => payloads.map((payload) => Number((this.#insert.get(payload, now) as { id: number }).id)))
  }

  claim(now: number, leaseMillis: number): Job | undefined {
    const claim = `${this.owner}/${++this.#claims}`
    const row = this.#claim.get({ owner: this.owner, claim, now, until: now + leaseMillis }) as
      | { id: number; payload: string; attempts: number }
      | undefined
    return row === undefined ? undefined : { id: row.id, payload: row.payload, attempts: row.attempts, claim }
  }

  /**
   * Marks the job done and runs `commit` in the same transaction — only while
   * this claim still holds the job. Returns false if it no longer does.
   */
  complete(job: Job, now: number, commit: (db: DatabaseSync) => void): boolean {
    return this.transaction(() => {
      if (Number(this.#done.run({ id: job.id, claim: job.claim, now }).changes) === 0) return false
      commit(this.db)
      return true
    })
  }

  fail(job: Job, now: number, error: string): boolean {
    return Number(this.#fail.run({ id: job.id, claim: job.claim, now, error }).changes) > 0
  }

  renew(now: number, leaseMillis: number): number {
    return Number(this.#renew.run({ owner: this.owner, until: now + leaseMillis }).changes)
  }

  /** Puts this owner's claimed jobs back to pending: it will not finish them. */
  release(): number {
    return Number(this.#release.run({ owner: this.owner }).changes)
  }

  stats(): Stats {
    const counts: Record<string, number> = { pending: 0, claimed: 0, done: 0, failed: 0 }
    for (const row of this.#stats.all() as Array<{ state: string; n: number }>) counts[row.state] = row.n
    return { pending: counts["pending"]!, claimed: counts["claimed"]!, done: counts["done"]!, failed: counts["failed"]! }
  }

  transaction<A>(body: () => A): A {
    this.db.exec("BEGIN IMMEDIATE")
    try {
      const result = body()
      this.db.exec("COMMIT")
      return result
    } catch (error) {
      this.db.exec("ROLLBACK")
      throw error
    }
  }
}
