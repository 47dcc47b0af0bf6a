/**
 * A Unix datagram socket of the test's own, as systemd's NOTIFY_SOCKET: a
 * python3 process bound to a path in a temporary folder that prints each
 * datagram it receives as one JSON line, in the order received. With
 * `probePort`, it tries a TCP connection to 127.0.0.1:probePort the moment a
 * datagram with READY=1 arrives, and prints whether it connected.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import { tempDir } from "./temp.ts"

export type Received =
  | { readonly kind: "bound" }
  | { readonly kind: "message"; readonly text: string; readonly pid: number | null }
  | { readonly kind: "probe"; readonly connected: boolean; readonly error: string | null }

const RECEIVER = `
import json, socket, struct, sys
path, probe = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
def out(record):
    sys.stdout.write(json.dumps(record) + "\\n")
    sys.stdout.flush()
out({"kind": "bound"})
while True:
    data, ancillary, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
    text = data.decode()
    out({"kind": "message", "text": text, "pid": pid})
    if probe > 0 and "READY=1" in text.split("\\n"):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            c.connect(("127.0.0.1", probe))
            out({"kind": "probe", "connected": True, "error": None})
        except OSError as error:
            out({"kind": "probe", "connected": False, "error": str(error)})
        finally:
            c.close()
`

export interface NotifySocket {
  readonly path: string
  /** Everything received so far, in order. */
  readonly received: () => ReadonlyArray<Received>
  /** The messages' texts, in order. */
  readonly messages: () => ReadonlyArray<string>
  /** Resolves once a message satisfies `predicate`. */
  readonly waitFor: (predicate: (text: string) => boolean, timeoutMs?: number) => Promise<string>
  /** The result of the probe made when READY=1 arrived. */
  readonly probed: (timeoutMs?: number) => Promise<Received>
  readonly close: () => void
}

export const notifySocket = async (options: { readonly probePort?: number } = {}): Promise<NotifySocket> => {
  const path = join(tempDir("notify"), "notify.sock")
  const child: ChildProcess = spawn("python3", ["-u", "-c", RECEIVER, path, String(options.probePort ?? 0)], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  const received: Array<Received> = []
  const listeners = new Set<() => void>()
  let buffered = ""
  child.stdout!.setEncoding("utf8")
  child.stdout!.on("data", (chunk: string) => {
    buffered += chunk
    const lines = buffered.split("\n")
    buffered = lines.pop()!
    for (const line of lines) received.push(JSON.parse(line) as Received)
    for (const listener of [...listeners]) listener()
  })
  const wait = (check: () => boolean, what: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      const listener = () => {
        if (!check()) return
        listeners.delete(listener)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        listeners.delete(listener)
        reject(new Error(`notify socket: timed out waiting for ${what}; received: ${JSON.stringify(received)}`))
      }, timeoutMs)
      listeners.add(listener)
      listener()
    })
  await wait(() => received.some((r) => r.kind === "bound"), "the socket to be bound", 10_000)
  // systemd-notify follows each message with BARRIER=1 (and waits until the fd it
  // passes with it is closed, as systemd does once it has read what came before).
  const messages = () => received.flatMap((r) => r.kind === "message" && r.text !== "BARRIER=1" ? [r.text] : [])
  return {
    path,
    received: () => received,
    messages,
    waitFor: async (predicate, timeoutMs = 15_000) => {
      await wait(() => messages().some(predicate), String(predicate), timeoutMs)
      return messages().find(predicate)!
    },
    probed: async (timeoutMs = 15_000) => {
      await wait(() => received.some((r) => r.kind === "probe"), "the probe at READY=1", timeoutMs)
      return received.find((r) => r.kind === "probe")!
    },
    close: () => void child.kill("SIGKILL")
  }
}

/** The `KEY=value` lines of a message as a record. */
export const fields = (message: string): Readonly<Record<string, string>> =>
  Object.fromEntries(message.split("\n").filter((line) => line.includes("=")).map((line) => {
    const at = line.indexOf("=")
    return [line.slice(0, at), line.slice(at + 1)]
  }))
