/**
 * A real PostgreSQL server for a test file: initdb in a temporary folder, the
 * server on a free port, stopped (and its folder removed) when the file ends.
 * The binaries are Debian's (/usr/lib/postgresql/<version>/bin), installed by
 * test/support/install-postgres.sh when missing. initdb refuses root: as root
 * the server runs as the `postgres` user.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const install = fileURLToPath(new URL("./install-postgres.sh", import.meta.url))

/** The newest installed server's bin folder, installing PostgreSQL first if there is none. */
export const postgresBin = (): string => {
  const find = () =>
    existsSync("/usr/lib/postgresql")
      ? readdirSync("/usr/lib/postgresql").map(Number).filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`))
        .sort((a, b) => b - a)
      : []
  if (find().length === 0) execFileSync("bash", [install], { stdio: ["ignore", "inherit", "inherit"] })
  const [version] = find()
  if (version === undefined) throw new Error("PostgreSQL is not installed, and install-postgres.sh did not install it")
  return `/usr/lib/postgresql/${version}/bin`
}

/** A port nobody listens on now. */
export const freePort = (host = "127.0.0.1"): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, host, () => {
      const address = server.address()
      server.close(() => typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port")))
    })
  })

/** As root, PostgreSQL's binaries run as the `postgres` user; otherwise as ourselves. */
const owner = (): { readonly uid: number; readonly gid: number } | undefined =>
  process.getuid?.() === 0
    ? { uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) }
    : undefined

export interface Postgres {
  /** postgres://postgres@<host>:<port>/postgres (trust authentication). */
  readonly url: string
  readonly host: string
  readonly port: number
  readonly process: ChildProcess
  /** psql -c `sql` against `database` (default postgres); its output. */
  readonly psql: (sql: string, database?: string) => string
  readonly stop: () => Promise<void>
}

export interface PostgresOptions {
  /** The addresses it listens on, comma-separated (default 127.0.0.1). */
  readonly listen?: string | undefined
  /** `-c name=value` settings. */
  readonly settings?: Readonly<Record<string, string>> | undefined
  /** Lines added to pg_hba.conf (initdb's own trusts loopback only): `host all all 10.1.2.0/30 trust`. */
  readonly hba?: ReadonlyArray<string> | undefined
}

/** Starts a server in a fresh folder; resolves once it accepts connections. */
export const startPostgres = async (options: PostgresOptions = {}): Promise<Postgres> => {
  const bin = postgresBin()
  const dir = mkdtempSync(join(tmpdir(), "effect-graceful-pg-"))
  chmodSync(dir, 0o755)
  const user = owner()
  if (user !== undefined) chownSync(dir, user.uid, user.gid)
  const data = join(dir, "data")
  execFileSync(`${bin}/initdb`, ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"], {
    stdio: "ignore",
    ...user
  })
  if (options.hba !== undefined) appendFileSync(join(data, "pg_hba.conf"), options.hba.map((line) => `${line}\n`).join(""))
  const port = await freePort()
  const settings = { max_connections: "200", ...options.settings }
  const child = spawn(`${bin}/postgres`, [
    "-D", data, "-p", String(port), "-k", dir, "-c", `listen_addresses=${options.listen ?? "127.0.0.1"}`,
    ...Object.entries(settings).flatMap(([name, value]) => ["-c", `${name}=${value}`])
  ], { stdio: ["ignore", "ignore", "pipe"], ...user })
  let log = ""
  child.stderr!.on("data", (chunk: Buffer) => log += chunk.toString())
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  // A parent that ends without stop() (killed, or a test runner that crashed) takes its server along.
  const orphan = () => child.kill("SIGQUIT")
  process.once("exit", orphan)
  const host = "127.0.0.1"
  const psql = (sql: string, database = "postgres") =>
    execFileSync(`${bin}/psql`, ["-h", host, "-p", String(port), "-U", "postgres", "-d", database, "-qAt", "-c", sql], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"]
    })
  // Ready once psql gets an answer (pg_isready says "accepting" a moment earlier than logins succeed).
  for (let attempt = 0;; attempt++) {
    try {
      psql("SELECT 1")
      break
    } catch (error) {
      if (child.exitCode !== null || attempt > 300) {
        child.kill("SIGKILL")
        throw new Error(`postgres did not start: ${String(error)}\n${log}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return {
    url: `postgres://postgres@${host}:${port}/postgres`,
    host,
    port,
    process: child,
    psql,
    stop: async () => {
      process.off("exit", orphan)
      if (child.exitCode === null) {
        // Immediate shutdown: clients still connected are cut, which is what a test's end wants.
        child.kill("SIGQUIT")
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
