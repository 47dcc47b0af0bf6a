/**
 * Exit codes a host integration asks for when it fires the quit event (memory
 * pressure): `Main.runMain` uses it when the shutdown itself went well (exit
 * code 0); a failure, the shutdown deadline or a forced exit keep theirs.
 *
 * @internal
 */
const codes = new WeakMap<object, number>()

/** @internal */
export const set = (quit: object, code: number): void => void codes.set(quit, code)

/** The code to exit with: the host's instead of 0. @internal */
export const resolve = (quit: object, code: number): number => code === 0 ? codes.get(quit) ?? 0 : code
