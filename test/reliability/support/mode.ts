/**
 * Reduced or full sizes. `npm test` runs the reduced suite (a few trials of
 * each scenario, no HAProxy); `npm run test:reliability` sets RELIABILITY=full
 * (test/reliability/vitest.config.ts) for the sizes the issue asks for and the
 * figures in results.md.
 */
export const full = process.env["RELIABILITY"] === "full"

/** `reduced` in the reduced suite, `fullSize` in the full one. */
export const size = <A>(reduced: A, fullSize: A): A => full ? fullSize : reduced
