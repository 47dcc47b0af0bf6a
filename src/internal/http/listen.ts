/**
 * Binding a Node server to its address, with a typed error that names the
 * address: shared by the HTTP servers and the standalone health server.
 *
 * @internal
 */
import { Data, Effect } from "effect"
import type * as Net from "node:net"
import * as activation from "../hosts/activation.ts"

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
  const fd = (options as { readonly fd?: unknown }).fd
  const address = typeof fd === "number" ? `fd ${fd} (passed by the service manager)` : options.path ??
    (typeof error?.address === "string" ? hostPort(error.address, error.port) : hostPort(options.host ?? "::", options.port))
  return new BindError({ address, code: typeof error?.code === "string" ? error.code : undefined, cause })
}

/**
 * Where the server named `name` listens: on the socket the service manager
 * passed for it (socket activation: `LISTEN_FDS`), if any, else `options`.
 *
 * @internal
 */
export const where = (name: string, options: Net.ListenOptions): Net.ListenOptions => {
  const passed = activation.current().claim(name)
  if (passed === undefined) return options
  // Node listens on a descriptor it is given (`{ fd }`), which its types do not list.
  const fd: Net.ListenOptions & { readonly fd: number } = { fd: passed.fd }
  return fd
}

/**
 * Starts listening — on the socket passed for `name` when there is one (see
 * {@link where}); fails with a {@link BindError}. Interrupted half-way, it
 * stops listening.
 *
 * @internal
 */
export const listen = (server: Net.Server, given: Net.ListenOptions, name?: string): Effect.Effect<void, BindError> =>
  Effect.callback<void, BindError>((resume) => {
    const options = name === undefined ? given : where(name, given)
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
