/**
 * What each reliability scenario runs on: child processes of the example
 * service (with faults, test/reliability/fixtures/service.ts) on loopback,
 * on ports chosen by the system, temporary files, and a cleanup that kills every
 * child, stops every helper and removes every file after each test — also when
 * it fails. Built on the e2e harness (real processes, real signals).
 */
import { afterEach } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { listeningPorts, type Ports } from "../../../examples/service/ports.ts"
import { type Child, start } from "../../e2e/harness.ts"

const serviceFixture = fileURLToPath(new URL("../fixtures/service.ts", import.meta.url))

export interface Service extends Child {
  /** The SQLite file of its job queue. */
  readonly database: string
  /** Resolves once it logged the ports it listens on. */
  readonly listening: (timeoutMs?: number) => Promise<Ports>
  /** Sends `signal` and waits for the exit: its code and the time from the signal to the exit. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<Stopped>
}

export interface Stopped {
  readonly code: number | null
  /** performance.now() when the signal was sent. */
  readonly sentAt: number
  readonly elapsedMs: number
}

export interface Lab {
  readonly tempDir: () => string
  /** Starts the example service with `env` (ports 0, JSON logs, a fresh database unless JOBS_DB is given). */
  readonly service: (env?: Record<string, string>) => Service
  /** Runs `cleanup` after the test; cleanups run last registered first. */
  readonly defer: (cleanup: () => unknown) => void
}

/** A lab for the tests of one file: call once at the top level of the file. */
export const lab = (): Lab => {
  const cleanups: Array<() => unknown> = []
  afterEach(async () => {
    const errors: Array<unknown> = []
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup()
      } catch (error) {
        errors.push(error)
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, "cleanup failed")
  })
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "effect-graceful-reliability-"))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    return dir
  }
  const service = (env: Record<string, string> = {}): Service => {
    const database = env["JOBS_DB"] ?? join(tempDir(), "jobs.db")
    const child = start(serviceFixture, {
      HOST: "127.0.0.1",
      PORT: "0",
      WEB_PORT: "0",
      GRPC_PORT: "0",
      LOG_FORMAT: "json",
      ...env,
      JOBS_DB: database
    })
    // Killed after the test whatever happened; a no-op if it has exited.
    cleanups.push(() => child.process.kill("SIGKILL"))
    return {
      ...child,
      database,
      listening: async (timeoutMs) => {
        await child.waitFor(/example service listening/, timeoutMs)
        return listeningPorts(child.output())!
      },
      stop: async (signal = "SIGTERM") => {
        const sentAt = child.signal(signal)
        // Bounded: a child that outlives this is SIGKILLed and the test fails.
        const { at, code } = await child.exited(30_000)
        return { code, sentAt, elapsedMs: at - sentAt }
      }
    }
  }
  return { tempDir, service, defer: (cleanup) => cleanups.push(cleanup) }
}
