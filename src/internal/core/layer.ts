/**
 * Making a quit event: for `Main.runMain`, and as `Quit.layer` for any other
 * runner (`NodeRuntime.runMain`, `Layer.launch` + `Effect.runFork`,
 * `ManagedRuntime`, tests).
 *
 * @internal
 */
import { Context, Effect, Layer, Logger, Option, Scope, Tracer } from "effect"
import * as engines from "./engines.ts"
import { drain } from "./group.ts"
import { describeTiming, InvalidOption, load, type Input, type Options, same } from "./options.ts"
import { describeReason, make as makeQuit, Quit, QuitImpl } from "./quit.ts"
import * as sequence from "./sequence.ts"
import * as signals from "./signals.ts"
import { traceShutdown } from "./trace.ts"

/** @internal */
export const make = (
  options: Options,
  phase: "starting" | "running" = "running",
  holder?: Scope.Scope
): Effect.Effect<QuitImpl> => makeQuit(options, phase, holder)

/** The units counted outside any scope (`Quit.track`): drained like a group with no intake. @internal */
export const finish = (quit: QuitImpl): Effect.Effect<void> =>
  sequence.finish(quit, (group) => drain(quit, group, quit.options))

/** The JSON logger when the format says so, for the layers built on the quit event. @internal */
export const loggerLayer = (format: "text" | "json"): Layer.Layer<never> =>
  format === "json" ? Logger.layer([Logger.consoleJson]) : Layer.empty

// What only a process runner can do, said once at start when an option asks
// for it: this runner cannot exit the process, nor knows which signals stop it.
const limits = (options: Options): ReadonlyArray<string> => {
  const notes: Array<string> = []
  if (options.origins.shutdownTimeout !== "default") {
    notes.push(
      `${describeTiming(options, "shutdownTimeout")}: every drain and close of effect-graceful ends by the close ` +
        `deadline inside it, but only Main.runMain exits the process at the shutdown deadline`
    )
  }
  const other = options.signals.filter((signal) => signal !== "SIGTERM" && signal !== "SIGINT")
  if (other.length > 0) {
    notes.push(`${other.join(", ")} fire the quit event; the program stops on them only if its runner interrupts it then`)
  }
  return notes
}

const build = (input: Input, phase: "starting" | "running", holder: Scope.Scope | undefined, scope: Scope.Scope) =>
  Effect.gen(function*() {
    const options = yield* load(input)
    const outer = yield* Effect.serviceOption(Quit)
    if (Option.isSome(outer)) {
      // Under Main.runMain: one quit event per process, and its options.
      if (!(outer.value instanceof QuitImpl) || !same(options, outer.value.options)) {
        return yield* new InvalidOption({
          variable: "Quit.layer",
          value: JSON.stringify(input),
          reason: "the program already has a quit event (Main.runMain) with other options; give them to Main.runMain"
        })
      }
      return Context.make(Quit, outer.value)
    }
    // The quit event logs with the loggers of the layers built on it.
    const logger = yield* Layer.buildWithScope(loggerLayer(options.logFormat), scope)
    const quit = yield* Effect.provideContext(make(options, phase, holder), logger)
    const unlisten = signals.listen(options.signals, {
      hear: (signal) => void sequence.fire(quit, { _tag: "Signal", signal }),
      raiseAlone: true
    })
    yield* Scope.addFinalizer(
      scope,
      Effect.gen(function*() {
        sequence.fire(quit, { _tag: "Released" })
        yield* finish(quit)
        sequence.stopped(quit)
        const reason = quit.reason
        traceShutdown(Context.get(quit.context, Tracer.Tracer), quit, { reason: reason === undefined ? undefined : describeReason(reason) })
      }).pipe(Effect.ensuring(Effect.sync(() => {
        unlisten()
        sequence.stopped(quit)
      })))
    )
    const old = engines.warnOnce()
    yield* Effect.forEach([...(old === undefined ? [] : [old]), ...limits(options)], (note) => Effect.logWarning(note), {
      discard: true
    }).pipe(Effect.provideContext(logger))
    return Context.merge(logger, Context.make(Quit, quit))
  })

/**
 * `Quit.layer`: memoized like any layer, and aware of the scope that holds
 * it — once that scope begins to close, the program's layers are being
 * released, and the first graceful finalizer fires the quit event.
 *
 * @internal
 */
export const layer = (input: Input = {}, config: { readonly phase?: "starting" | "running" } = {}): Layer.Layer<Quit, InvalidOption> => {
  const self: Layer.Layer<Quit, InvalidOption> = Layer.fromBuild((memoMap, scope) =>
    memoMap.getOrElseMemoize(self, scope, (_, own) => build(input, config.phase ?? "running", scope.parent, own))
  )
  return self
}
