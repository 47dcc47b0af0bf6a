/**
 * Sending `sd_notify(3)` messages. A message is one datagram on the Unix
 * socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract
 * namespace), made of `KEY=value` lines. Node cannot open a Unix datagram
 * socket, so the datagram goes out through one of three transports, the first
 * that this host has unless `SYSTEMD_NOTIFY_TRANSPORT` names one:
 *
 * - `native`: the optional package `node-unix-socket` (prebuilt, no
 *   compiler), in this process — systemd sees the main PID, so the default
 *   `NotifyAccess=main` accepts it;
 * - `helper`: one long-lived `python3` process fed on a pipe, which ignores
 *   SIGTERM and SIGINT (systemd signals the whole control group) and ends
 *   with this process (end of its input) — needs `NotifyAccess=all`;
 * - `systemd-notify`: systemd's own tool, spawned for each message, one at a
 *   time so that they arrive in order (what queues meanwhile goes out as one
 *   message, as long as no key repeats) — needs `NotifyAccess=all`, unless it runs as root: then it
 *   sends with its parent's PID, the main PID.
 *
 * @internal
 */
import { type ChildProcess, spawn } from "node:child_process"
import { accessSync, constants } from "node:fs"
import { createRequire } from "node:module"
import { delimiter, join } from "node:path"

/** @internal */
export type Kind = "native" | "helper" | "systemd-notify"

/** @internal */
export const KINDS: ReadonlyArray<Kind> = ["native", "helper", "systemd-notify"]

/** @internal */
export interface Transport {
  readonly kind: Kind
  /** Sends one message; a failure is told to `onError`, never thrown. */
  readonly send: (message: string) => void
  /** Lets go of what it holds (the helper's pipe). */
  readonly close: () => void
}

/** Where to send: the socket address as the kernel takes it (`\0name` for the abstract namespace). @internal */
export const address = (socket: string): string => socket.startsWith("@") ? `\0${socket.slice(1)}` : socket

/** The full path of `command` on `PATH`, if it is there and executable. @internal */
export const which = (command: string, path = process.env["PATH"] ?? ""): string | undefined => {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue
    const candidate = join(dir, command)
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

interface DgramSocket {
  sendTo(buf: Buffer, offset: number, length: number, destPath: string, onWrite?: (error: Error | undefined) => void): void
  close(): void
}

const loadNative = (): (new() => DgramSocket) | undefined => {
  try {
    const loaded: unknown = createRequire(import.meta.url)("node-unix-socket")
    const DgramSocket = typeof loaded === "object" && loaded !== null ? (loaded as { DgramSocket?: unknown }).DgramSocket : undefined
    return typeof DgramSocket === "function" ? DgramSocket as new() => DgramSocket : undefined
  } catch {
    return undefined
  }
}

const native = (socket: string, onError: (error: unknown) => void): Transport | undefined => {
  const DgramSocket = loadNative()
  if (DgramSocket === undefined) return undefined
  const dgram = new DgramSocket()
  const target = address(socket)
  return {
    kind: "native",
    send: (message) => {
      const buffer = Buffer.from(message)
      try {
        dgram.sendTo(buffer, 0, buffer.length, target, (error) => error !== undefined && error !== null && onError(error))
      } catch (error) {
        onError(error)
      }
    },
    close: () => dgram.close()
  }
}

// One JSON string per line in, one datagram out. SIGTERM and SIGINT are
// ignored: at a stop, systemd (KillMode=control-group) signals every process
// of the service, and the helper must outlive the main process's last word.
const HELPER = `
import json, signal, socket, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
target = sys.argv[1]
if target.startswith("@"):
    target = "\\0" + target[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    try:
        s.sendto(json.loads(line).encode(), target)
    except OSError as error:
        sys.stderr.write("sd_notify helper: %s\\n" % error)
        sys.stderr.flush()
`

const helper = (socket: string, onError: (error: unknown) => void): Transport | undefined => {
  const python = which("python3")
  if (python === undefined) return undefined
  const child: ChildProcess = spawn(python, ["-u", "-c", HELPER, socket], { stdio: ["pipe", "ignore", "inherit"] })
  child.on("error", onError)
  child.stdin!.on("error", onError)
  // Neither keeps the event loop alive: the process exits when its work does.
  child.unref()
  return {
    kind: "helper",
    send: (message) => void child.stdin!.write(`${JSON.stringify(message)}\n`),
    close: () => child.stdin!.end()
  }
}

const perMessage = (socket: string, onError: (error: unknown) => void): Transport | undefined => {
  const tool = which("systemd-notify")
  if (tool === undefined) return undefined
  // One at a time — spawned at once, they could arrive in any order — and
  // what queued meanwhile goes out together, as one message: its lines in
  // order (systemd reads them in order: a later STATUS= wins).
  const queue: Array<string> = []
  let running = false
  const next = () => {
    if (queue.length === 0) {
      running = false
      return
    }
    running = true
    // systemd-notify merges its arguments as an environment (a key given twice keeps the
    // last value): a batch ends before a message that repeats a key, WATCHDOG=1 aside.
    const args: Array<string> = []
    const keys = new Set<string>()
    while (queue.length > 0) {
      const lines = queue[0]!.split("\n").filter((line) => !(line === "WATCHDOG=1" && keys.has("WATCHDOG")))
      const fresh = lines.map((line) => line.slice(0, line.indexOf("=")))
      if (args.length > 0 && fresh.some((key) => keys.has(key))) break
      queue.shift()
      for (const key of fresh) keys.add(key)
      args.push(...lines)
    }
    const child = spawn(tool, args, { stdio: "ignore", env: { ...process.env, NOTIFY_SOCKET: socket } })
    child.on("error", (error) => {
      onError(error)
      next()
    })
    child.on("exit", (code) => {
      if (code !== 0) onError(new Error(`systemd-notify exited ${code}`))
      next()
    })
  }
  return {
    kind: "systemd-notify",
    send: (message) => {
      queue.push(message)
      if (!running) next()
    },
    close: () => {}
  }
}

const MAKERS: { readonly [K in Kind]: (socket: string, onError: (error: unknown) => void) => Transport | undefined } = {
  native,
  helper,
  "systemd-notify": perMessage
}

/**
 * The transport to `socket`: the one `wanted` names, or the first this host
 * has; `undefined` when none is there.
 *
 * @internal
 */
export const open = (socket: string, wanted: Kind | undefined, onError: (error: unknown) => void): Transport | undefined => {
  for (const kind of wanted === undefined ? KINDS : [wanted]) {
    const transport = MAKERS[kind](socket, onError)
    if (transport !== undefined) return transport
  }
  return undefined
}
