/**
 * Clients that misbehave, on raw sockets: bytes no HTTP or gRPC client would
 * send, and a slowloris that sends its headers a byte at a time. Each reports
 * what the server did — answered (the bytes it sent back), closed, reset — and
 * when.
 */
import * as Net from "node:net"

export interface Exchange {
  /** What the server sent back, as latin1 text. */
  readonly response: string
  /** How the connection ended: closed by the server, reset, refused, or still open at the timeout. */
  readonly ending: "closed" | "reset" | "refused" | "open"
  /** performance.now() when it ended. */
  readonly at: number
}

/** Connects, writes `bytes`, and collects the answer until the server ends the connection or `timeoutMs` passes. */
export const exchange = (port: number, bytes: string | Buffer, timeoutMs = 3_000): Promise<Exchange> =>
  new Promise((resolve) => {
    const socket = Net.connect(port, "127.0.0.1", () => socket.write(bytes))
    let response = ""
    let ending: Exchange["ending"] = "closed"
    const timer = setTimeout(() => {
      ending = "open"
      socket.destroy()
    }, timeoutMs)
    socket.on("data", (chunk: Buffer) => response += chunk.toString("latin1"))
    socket.on("error", (error: NodeJS.ErrnoException) => ending = error.code === "ECONNREFUSED" ? "refused" : "reset")
    socket.on("close", () => {
      clearTimeout(timer)
      resolve({ response, ending, at: performance.now() })
    })
  })

export interface Slowloris {
  /** Header bytes sent so far. */
  readonly sent: () => number
  /** Resolves when the server ends the connection: what it answered, and when. */
  readonly ended: Promise<Exchange>
}

/**
 * Opens a connection and sends a request's headers one byte every
 * `intervalMs`, never finishing them (the last header's value grows forever).
 */
export const slowloris = (port: number, intervalMs: number): Slowloris => {
  const head = "GET /work?ms=0 HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  const socket = Net.connect(port, "127.0.0.1", () => {
    timer = setInterval(() => {
      if (!socket.writable) return
      socket.write(sent < head.length ? head[sent]! : "a")
      sent++
    }, intervalMs)
  })
  let response = ""
  let ending: Exchange["ending"] = "closed"
  socket.on("data", (chunk: Buffer) => response += chunk.toString("latin1"))
  socket.on("error", (error: NodeJS.ErrnoException) => ending = error.code === "ECONNREFUSED" ? "refused" : "reset")
  const ended = new Promise<Exchange>((resolve) =>
    socket.on("close", () => {
      clearInterval(timer)
      resolve({ response, ending, at: performance.now() })
    })
  )
  return { sent: () => sent, ended }
}
