/**
 * nginx (open source, Debian's) in front of instances of the example
 * service, as an ingress controller runs it: upstreams whose server lists the
 * test rewrites — a controller's step — and reloads (SIGHUP to the master,
 * which starts workers on the new configuration and lets the old ones finish
 * what they serve). No active health checks: nginx OSS has none; it learns
 * that an instance is gone only from the configuration, or passively from a
 * failed connection (`max_fails`, `proxy_next_upstream`).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"

/** The nginx binary; throws — the scenario fails, it is not skipped — if it is not installed. */
export const nginxBinary = (): string => {
  for (const candidate of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]) {
    if (existsSync(candidate)) return candidate
  }
  try {
    return execFileSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" }).trim()
  } catch {
    throw new Error("nginx is not installed: run test/reliability/setup.sh (npm run test:reliability does)")
  }
}

export interface Nginx {
  /** Writes `http` as the new `http { … }` body and reloads (SIGHUP); resolves once the master has been told. */
  readonly reload: (http: ReadonlyArray<string>) => Promise<void>
  /** Its error log so far. */
  readonly errors: () => string
  readonly output: () => string
}

const configuration = (dir: string, http: ReadonlyArray<string>) =>
  [
    "user root root;",
    "worker_processes 1;",
    `pid ${join(dir, "nginx.pid")};`,
    `error_log ${join(dir, "error.log")} warn;`,
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `  ${kind}_temp_path ${join(dir, kind)};`),
    ...http.map((line) => `  ${line}`),
    "}",
    ""
  ].join("\n")

/**
 * Starts nginx in the foreground in `dir` with the `http { … }` body `http`;
 * `onExit` registers its stop. Resolves once its workers run (its pid file is
 * written and `ready` says the frontends answer).
 */
export const startNginx = async (
  dir: string,
  http: ReadonlyArray<string>,
  ready: () => Promise<boolean>,
  onExit: (stop: () => void) => void
): Promise<Nginx> => {
  const file = join(dir, "nginx.conf")
  const errorLog = join(dir, "error.log")
  writeFileSync(file, configuration(dir, http))
  const child: ChildProcess = spawn(nginxBinary(), ["-p", dir, "-c", file, "-g", "daemon off;"], {
    stdio: ["ignore", "pipe", "pipe"]
  })
  onExit(() => child.kill("SIGKILL"))
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => output += chunk)
  child.stderr?.on("data", (chunk: Buffer) => output += chunk)
  const deadline = performance.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${output}`)
    if (existsSync(join(dir, "nginx.pid")) && await ready()) break
    if (performance.now() > deadline) throw new Error(`nginx did not start:\n${output}`)
    await sleep(20)
  }
  return {
    reload: async (next) => {
      writeFileSync(file, configuration(dir, next))
      if (child.pid === undefined || !child.kill("SIGHUP")) throw new Error(`nginx is gone:\n${output}`)
      await Promise.resolve()
    },
    errors: () => existsSync(errorLog) ? readFileSync(errorLog, "utf8") : "",
    output: () => output
  }
}
