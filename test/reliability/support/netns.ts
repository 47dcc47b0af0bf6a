/**
 * A network namespace of its own for one scenario (Linux, root: `ip netns`):
 * its own loopback, so that fixed ports never meet the machine's, and its own
 * `net.ipv4.tcp_migrate_req` — the sysctl is per namespace, so a scenario sets
 * it without touching the machine's. Loopback is per namespace too: whatever
 * talks to a process inside must run inside (see `launcher`).
 *
 * The namespace is deleted after the test, also when it fails: every process
 * still in it (one this run started: nothing else lives there) is SIGKILLed by
 * its id first.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import type { Launcher } from "../../../examples/handoff.ts"

export interface Netns {
  readonly name: string
  /** The value of `net.ipv4.tcp_migrate_req` inside, read back after it was set. */
  readonly migrateReq: number
  /** The command prefix that runs a Node script inside: `ip netns exec <name> <this Node>`. */
  readonly launcher: Launcher
  /** Runs a command inside and returns its stdout (throws if it fails). */
  readonly exec: (command: string, args: ReadonlyArray<string>) => string
}

let made = 0

/** Runs `ip` with `args`; its output. */
export const ip = (args: ReadonlyArray<string>): string => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

/** Ends what runs in the namespace `name`, then deletes it. */
export const remove = (name: string): void => {
  const pids = ip(["netns", "pids", name]).split(/\s+/).filter((pid) => pid !== "").map(Number)
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // Gone meanwhile.
    }
  }
  ip(["netns", "delete", name])
}

/**
 * Makes a namespace with loopback up and `net.ipv4.tcp_migrate_req` =
 * `migrateReq`; `defer` registers its deletion (the lab's `defer`).
 */
export const makeNetns = (migrateReq: 0 | 1, defer: (cleanup: () => unknown) => void): Netns => {
  const name = `eg${process.pid}-${++made}-${randomBytes(2).toString("hex")}`
  ip(["netns", "add", name])
  defer(() => remove(name))
  const exec = (command: string, args: ReadonlyArray<string>) =>
    execFileSync("ip", ["netns", "exec", name, command, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  exec("ip", ["link", "set", "lo", "up"])
  exec("sysctl", ["-w", `net.ipv4.tcp_migrate_req=${migrateReq}`])
  const readBack = Number(exec("sysctl", ["-n", "net.ipv4.tcp_migrate_req"]).trim())
  if (readBack !== migrateReq) throw new Error(`net.ipv4.tcp_migrate_req is ${readBack} in ${name}, not ${migrateReq}`)
  return { name, migrateReq: readBack, launcher: ["ip", "netns", "exec", name, process.execPath], exec }
}
