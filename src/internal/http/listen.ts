/**
 * Binding a Node server to its address, with a typed error that names the
 * address: shared by the HTTP servers and the standalone health server.
 *
 * @internal
 */
import { Data, Effect } from "effect"
import type * as Net from "node:net"

const REASONS: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EACCES: "permission denied",
  EADDRNOTAVAIL: "address not available on this host",
  ENOTFOUND: "host not found"
}

/**
 * The server could not listen: the port is in use, binding it needs a
 * permission the process lacks, or the host is not an address of this machine.
 * `address` is what was asked for (`127.0.0.1:8080`, `[::]:80`, a socket path).
 *
 * @since 0.1.0
 */
export class BindError extends Data.TaggedError("BindError")<{
  readonly address: string
  /** The system error code, such as `EADDRINUSE` or `EACCES`. */
  readonly code: string | undefined
  readonly cause: unknown
}> {
  override get message(): string {
    const reason = this.code === undefined
      ? this.cause instanceof Error ? this.cause.message : String(this.cause)
      : `${REASONS[this.code] ?? this.code} (${this.code})`
    return `cannot listen on ${this.address}: ${reason}`
  }
}

const hostPort = (host: string, port: number | undefined) =>
  `${host.includes(":") ? `[${host}]` : host}:${port ?? 0}`

/** The address as asked for; Node's error, when it has one, knows it best. @internal */
export const bindError = (options: Net.ListenOptions, cause: unknown): BindError => {
  const error = cause as Partial<NodeJS.ErrnoException & { address: string; port: number }> | undefined
  const address = options.path ??
    (typeof error?.address === "string" ? hostPort(error.address, error.port) : hostPort(options.host ?? "::", options.port))
  return new BindError({ address, code: typeof error?.code === "string" ? error.code : undefined, cause })
}

/** Starts listening; fails with a {@link BindError}. Interrupted half-way, it stops listening. @internal */
export const listen = (server: Net.Server, options: Net.ListenOptions): Effect.Effect<void, BindError> =>
  Effect.callback<void, BindError>((resume) => {
    const onError = (error: Error) => {
      server.off("listening", onListening)
      resume(Effect.fail(bindError(options, error)))
    }
    const onListening = () => {
      server.off("error", onError)
      resume(Effect.void)
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(options)
    return Effect.sync(() => {
      server.off("error", onError)
      server.off("listening", onListening)
      if (server.listening) server.close()
    })
  })

/** Where a server listens, as a URL for logs. @internal */
export const describeAddress = (server: Net.Server, scheme: string): string => {
  const address = server.address()
  if (address === null) return "(not listening)"
  if (typeof address === "string") return address
  return `${scheme}://${hostPort(address.address, address.port)}`
}
