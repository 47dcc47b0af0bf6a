/**
 * A raw HTTP/1.1 client on one socket, for what Node's clients will not do:
 * pipelining, a silent connection, a request sent at a moment of our choice.
 * It reads the responses off the wire and says how the connection ended.
 */
import * as Net from "node:net"
import * as Tls from "node:tls"

export interface RawResponse {
  readonly status: number
  readonly connection: string | undefined
  readonly body: string
}

export interface RawClient {
  readonly socket: Net.Socket
  /** Writes requests for `paths`, back to back, in one write. */
  send(...paths: ReadonlyArray<string>): void
  /** The complete responses read so far, in order. */
  responses(): ReadonlyArray<RawResponse>
  /** Resolves when `n` responses have been read. */
  received(n: number): Promise<ReadonlyArray<RawResponse>>
  /** Resolves when the connection ends: `closed` by the server, or `reset`. */
  readonly ended: Promise<"closed" | "reset">
}

const parse = (text: string): { readonly responses: Array<RawResponse>; readonly rest: string } => {
  const responses: Array<RawResponse> = []
  let rest = text
  while (true) {
    const head = rest.indexOf("\r\n\r\n")
    if (head === -1) break
    const lines = rest.slice(0, head).split("\r\n")
    const header = (name: string) =>
      lines.find((line) => line.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim().toLowerCase()
    const length = Number(header("content-length") ?? 0)
    if (rest.length < head + 4 + length) break
    responses.push({ status: Number(lines[0]!.split(" ")[1]), connection: header("connection"), body: rest.slice(head + 4, head + 4 + length) })
    rest = rest.slice(head + 4 + length)
  }
  return { responses, rest }
}

/** Connects to `port` (over TLS when `tls` is set, without checking the certificate). */
export const rawClient = (port: number, options: { readonly tls?: boolean } = {}): Promise<RawClient> =>
  new Promise((resolve) => {
    const socket: Net.Socket = options.tls === true
      ? Tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false })
      : Net.connect(port, "127.0.0.1")
    let buffer = ""
    const responses: Array<RawResponse> = []
    const waiters: Array<() => void> = []
    let resetSeen = false
    const ended = new Promise<"closed" | "reset">((done) => socket.once("close", () => done(resetSeen ? "reset" : "closed")))
    socket.on("error", () => resetSeen = true)
    socket.on("data", (chunk: Buffer) => {
      const parsed = parse(buffer + chunk.toString("latin1"))
      buffer = parsed.rest
      responses.push(...parsed.responses)
      for (const wake of waiters.splice(0)) wake()
    })
    const client: RawClient = {
      socket,
      send: (...paths) => void socket.write(paths.map((path) => `GET ${path} HTTP/1.1\r\nHost: test\r\n\r\n`).join("")),
      responses: () => [...responses],
      received: (n) =>
        new Promise((done) => {
          const check = () => responses.length >= n ? done([...responses]) : waiters.push(check)
          check()
        }),
      ended
    }
    socket.once(options.tls === true ? "secureConnect" : "connect", () => resolve(client))
  })

/** A TCP connection that never says anything (for TLS: a handshake that never starts). */
export const silent = (port: number): Promise<{ readonly socket: Net.Socket; readonly ended: Promise<void> }> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.on("error", () => {})
    const ended = new Promise<void>((done) => socket.once("close", () => done()))
    socket.once("connect", () => resolve({ socket, ended }))
  })
