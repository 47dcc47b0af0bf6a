/**
 * What tests read of the quit event beyond its public face: the rows the
 * report will have, and the implementation itself.
 */
import { Effect } from "effect"
import { current } from "../../src/internal/core/quit.ts"

export { current, impl } from "../../src/internal/core/quit.ts"
export * as sequence from "../../src/internal/core/sequence.ts"

/** The report's rows as of now. */
export const rows = Effect.map(current, (quit) => quit.rows())
