/**
 * The process signals that stop the program, for every runner: one listener
 * per signal, shared by whoever listens in this process, put before any other
 * so that the quit event has fired when a runner's own listener (Effect's
 * `NodeRuntime.runMain`) interrupts the program. A signal listed twice is one
 * signal: it is listened to once.
 *
 * What a signal does is its hearer's business: `Main.runMain` fires the quit
 * event on the first and forces the exit on a later one; `Quit.layer` fires
 * the quit event. When a signal reaches a hearer that said `raiseAlone` and
 * nothing else in the process listens to it (no runner of its own), the
 * listener removes itself and raises the signal again, so that the process
 * ends the way it would have without us — Node's default action applies only
 * while no listener is installed.
 *
 * @internal
 */

/** Who hears a signal, and whether the signal should end the process when it is the only one listening. @internal */
export interface Hearer {
  readonly hear: (signal: NodeJS.Signals) => void
  readonly raiseAlone: boolean
}

const live = new Map<NodeJS.Signals, { readonly listener: (signal: NodeJS.Signals) => void; readonly hearers: Set<Hearer> }>()

const install = (signal: NodeJS.Signals) => {
  const hearers = new Set<Hearer>()
  const listener = (received: NodeJS.Signals) => {
    const heard = [...hearers]
    for (const hearer of heard) hearer.hear(received)
    if (heard.some((hearer) => hearer.raiseAlone) && process.listenerCount(signal) === 1) {
      process.removeListener(signal, listener)
      live.delete(signal)
      process.kill(process.pid, signal)
    }
  }
  process.prependListener(signal, listener)
  const entry = { listener, hearers }
  live.set(signal, entry)
  return entry
}

/** Calls `hearer.hear` on each of `signals` until the returned function is called. @internal */
export const listen = (signals: ReadonlyArray<NodeJS.Signals>, hearer: Hearer): () => void => {
  const once = [...new Set(signals)]
  for (const signal of once) (live.get(signal) ?? install(signal)).hearers.add(hearer)
  return () => {
    for (const signal of once) {
      const entry = live.get(signal)
      if (entry === undefined) continue
      entry.hearers.delete(hearer)
      if (entry.hearers.size === 0) {
        process.removeListener(signal, entry.listener)
        live.delete(signal)
      }
    }
  }
}
