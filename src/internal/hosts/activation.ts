/**
 * Socket activation (`sd_listen_fds(3)`): the listening sockets a service
 * manager (systemd, `systemd-socket-activate`) opened and passed as file
 * descriptors 3, 4, … with `LISTEN_FDS` (their count), `LISTEN_PID` (the
 * process they are for) and `LISTEN_FDNAMES` (their names, colon-separated).
 *
 * Read once, on first use; the variables are then removed from the
 * environment (as `sd_listen_fds(1)` does), so that a child process does not
 * take them for its own.
 *
 * @internal
 */

/** The first passed descriptor, `SD_LISTEN_FDS_START`. @internal */
export const FIRST_FD = 3

/** A passed socket: its descriptor and its name (`unknown` when none was given). @internal */
export interface Passed {
  readonly fd: number
  readonly name: string
}

/** The sockets passed to this process: none unless `LISTEN_PID` names it. @internal */
export const parse = (env: NodeJS.ProcessEnv, pid: number): ReadonlyArray<Passed> => {
  const count = Number(env["LISTEN_FDS"])
  if (!Number.isInteger(count) || count <= 0) return []
  if (env["LISTEN_PID"] === undefined || Number(env["LISTEN_PID"]) !== pid) return []
  const names = env["LISTEN_FDNAMES"]?.split(":") ?? []
  return Array.from({ length: count }, (_, i) => ({ fd: FIRST_FD + i, name: names[i] || "unknown" }))
}

/** What was passed, and which ones a server took. @internal */
export class Activation {
  readonly passed: ReadonlyArray<Passed>
  readonly #taken = new Set<number>()

  constructor(passed: ReadonlyArray<Passed>) {
    this.passed = passed
  }

  /**
   * The socket for the server named `name`: the one passed under that name;
   * else the first one not taken yet, in the order they were passed, among
   * those that carry no name of their own (`unknown`, or systemd's default:
   * the socket unit's name, `app.socket`) — a socket named `grpc` waits for
   * the server named `grpc`. None left: the server binds as configured.
   */
  claim(name: string): Passed | undefined {
    const free = this.passed.filter((socket) => !this.#taken.has(socket.fd))
    const socket = free.find((candidate) => candidate.name === name) ?? free.find((candidate) => unnamed(candidate.name))
    if (socket !== undefined) this.#taken.add(socket.fd)
    return socket
  }

  /** Sockets passed that no server took (to warn about). */
  get untaken(): ReadonlyArray<Passed> {
    return this.passed.filter((socket) => !this.#taken.has(socket.fd))
  }
}

const unnamed = (name: string) => name === "unknown" || name.endsWith(".socket")

let process_: Activation | undefined

/** The process's own, read on first use; the variables are then removed. @internal */
export const current = (): Activation => {
  if (process_ !== undefined) return process_
  process_ = new Activation(parse(process.env, process.pid))
  delete process.env["LISTEN_FDS"]
  delete process.env["LISTEN_PID"]
  delete process.env["LISTEN_FDNAMES"]
  return process_
}
