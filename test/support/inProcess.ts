/**
 * Runs a broker pool in this process, under a quit event of its own, until a
 * condition holds; then closes its scope (the quit event fires as the layers
 * are released) — or fires the quit event itself first.
 */
import { Effect, Exit, Scope } from "effect"
import { setTimeout as sleep } from "node:timers/promises"
import { Quit } from "../../src/index.ts"
import type * as Options from "../../src/Options.ts"

export const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/**
 * Builds `pool` in a scope, waits for `done`, then — with `fire` — fires the
 * quit event and waits for `afterFire`, and closes the scope. Returns the
 * pool's build exit (a refused setting fails it).
 */
export const runPool = <A, E>(
  pool: Effect.Effect<A, E, Quit.Quit | Scope.Scope>,
  options: {
    readonly quit?: Options.Input
    readonly done?: () => boolean | Promise<boolean>
    readonly fire?: boolean
    readonly afterFire?: () => boolean | Promise<boolean>
  } = {}
): Promise<Exit.Exit<A, E>> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const built = yield* Effect.exit(Scope.provide(pool, scope))
      if (Exit.isSuccess(built)) {
        if (options.done !== undefined) yield* Effect.promise(() => until("the pool's work", options.done!))
        if (options.fire === true) {
          yield* Quit.fire("test")
          if (options.afterFire !== undefined) yield* Effect.promise(() => until("after the quit event", options.afterFire!))
        }
      }
      yield* Scope.close(scope, Exit.void)
      return built
    }).pipe(Effect.provide(Quit.layer({ drainDelay: 0, ...options.quit })))
  )
