/**
 * The one line the example service logs once everything listens, and its
 * reading: tests and the demo start the service on port 0 and learn its ports
 * from it. Kept apart from the service so that readers load nothing else.
 */

/** The ports of a running example service. */
export interface Ports {
  readonly api: number
  readonly web: number
  readonly grpc: number
}

/** The line, as `App` logs it. */
export const listeningLine = (ports: Ports, extra: ReadonlyArray<string>): string =>
  `example service listening: ${[`api=${ports.api}`, `web=${ports.web}`, `grpc=${ports.grpc}`, ...extra].join(" ")}`

/** The ports from the service's output, once it has logged the line. */
export const listeningPorts = (output: string): Ports | undefined => {
  const match = /example service listening: api=(\d+) web=(\d+) grpc=(\d+)/.exec(output)
  return match === null ? undefined : { api: Number(match[1]), web: Number(match[2]), grpc: Number(match[3]) }
}
