/**
 * The process signals of `Quit.layer`: one listener per signal, shared by
 * every live quit event of the process, put before any other listener so
 * that the quit event has fired when a runner's own listener (Effect's
 * `NodeRuntime.runMain`) interrupts the program.
 *
 * A signal that nothing else listens to would otherwise do nothing at all:
 * Node's default action (ending the process) applies only while no listener
 * is installed. Then, after firing, the listener removes itself and raises the
 * signal again, so that the process ends the way it would have without us.
 *
 * @internal
 */

interface Fire {
  (signal: NodeJS.Signals): void
}

const live = new Map<NodeJS.Signals, { readonly listener: (signal: NodeJS.Signals) => void; readonly fires: Set<Fire> }>()

const install = (signal: NodeJS.Signals) => {
  const fires = new Set<Fire>()
  const listener = (received: NodeJS.Signals) => {
    for (const fire of [...fires]) fire(received)
    if (process.listenerCount(signal) === 1) {
      process.removeListener(signal, listener)
      live.delete(signal)
      process.kill(process.pid, signal)
    }
  }
  process.prependListener(signal, listener)
  const entry = { listener, fires }
  live.set(signal, entry)
  return entry
}

/** Calls `fire` on each of `signals` until the returned function is called. @internal */
export const listen = (signals: ReadonlyArray<NodeJS.Signals>, fire: Fire): () => void => {
  for (const signal of signals) (live.get(signal) ?? install(signal)).fires.add(fire)
  return () => {
    for (const signal of signals) {
      const entry = live.get(signal)
      if (entry === undefined) continue
      entry.fires.delete(fire)
      if (entry.fires.size === 0) {
        process.removeListener(signal, entry.listener)
        live.delete(signal)
      }
    }
  }
}
