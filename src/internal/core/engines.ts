/**
 * The Node versions the library is tested on (`engines` in package.json): an
 * older Node runs it, but behaviours the README promises fail there. Said once
 * per process, at start.
 *
 * @internal
 */

/** The oldest Node the library keeps its promises on. @internal */
export const REQUIRED = "24.20.0"

const parts = (version: string): ReadonlyArray<number> => version.split(".").map((part) => Number.parseInt(part, 10) || 0)

/** The warning for `version` (`process.versions.node`), or `undefined` when it is recent enough. @internal */
export const warning = (version: string): string | undefined => {
  const have = parts(version)
  const need = parts(REQUIRED)
  for (let i = 0; i < need.length; i++) {
    const a = have[i] ?? 0
    const b = need[i] ?? 0
    if (a > b) return undefined
    if (a < b) {
      return `Node ${version} is older than effect-graceful's engines (>=${REQUIRED}): it runs, but tested behaviours fail ` +
        `(on Node 24.19 and older a request pipelined behind a Connection: close response still runs; on older ones a ` +
        `gRPC bidi call hangs once its client half-closes): run Node >=${REQUIRED}`
    }
  }
  return undefined
}

let warned = false

/** The warning for this process's Node, the first time it is asked for. @internal */
export const warnOnce = (): string | undefined => {
  if (warned) return undefined
  warned = true
  return warning(process.versions.node)
}
