/**
 * The figures of the full suite: each scenario records what it measured
 * (trials, requests, failures, signal-to-exit times, exit codes) into
 * test/reliability/results.json as it ends; the global teardown renders
 * results.md from it. The reduced suite (`npm test`) records nothing, so it
 * never rewrites the committed figures.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { fileURLToPath } from "node:url"
import { full } from "./mode.ts"

export const resultsJson = fileURLToPath(new URL("../results.json", import.meta.url))
export const resultsMd = fileURLToPath(new URL("../results.md", import.meta.url))

export interface Figures {
  /** The scenario family (one test file): "SIGTERM under load", "fault injection"… */
  readonly family: string
  readonly scenario: string
  readonly trials: number
  /** Requests (or jobs) that the promise is about, if any. */
  readonly requests?: number | undefined
  /** Of those, how many broke the promise. */
  readonly failures?: number | undefined
  /** From the signal to the child's exit, per trial, in milliseconds. */
  readonly signalToExitMs: ReadonlyArray<number>
  /** From the signal to the child's listener refusing connections (seen from outside), per trial, if measured. */
  readonly signalToCloseMs?: ReadonlyArray<number> | undefined
  /** The target to read those times against (shutdown timeout + 100 ms), if any: recorded, not asserted. */
  readonly limitMs?: number | undefined
  readonly exitCodes: ReadonlyArray<number | null>
  /** Anything else worth quoting, in words. */
  readonly notes?: ReadonlyArray<string> | undefined
}

export interface Results {
  readonly startedAt: string
  readonly machine: string
  readonly scenarios: Array<Figures>
}

/** A fresh results.json (the global setup of the full suite). */
export const resetResults = (): void => {
  const results: Results = {
    startedAt: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? "unknown CPU"}, Node ${process.versions.node}, ${process.platform}`,
    scenarios: []
  }
  writeFileSync(resultsJson, JSON.stringify(results, null, 2) + "\n")
}

const readResults = (): Results => JSON.parse(readFileSync(resultsJson, "utf8")) as Results

/**
 * Records one scenario's figures (full suite only). The full suite runs its
 * files one at a time, so this read-modify-write never races.
 */
export const record = (figures: Figures): void => {
  if (!full) return
  const results = readResults()
  results.scenarios.push(figures)
  writeFileSync(resultsJson, JSON.stringify(results, null, 2) + "\n")
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)]!
}

/** Min / median / max, in whole milliseconds. */
export const spread = (values: ReadonlyArray<number>): string =>
  values.length === 0
    ? "-"
    : values.length === 1
    ? `${Math.round(values[0]!)}`
    : `${Math.round(Math.min(...values))} / ${Math.round(median(values))} / ${Math.round(Math.max(...values))}`

const codes = (exitCodes: ReadonlyArray<number | null>) => {
  const counts = new Map<string, number>()
  // null: the process was ended by the signal itself (SIGKILL), with no exit code.
  for (const code of exitCodes.map((c) => c === null ? "killed" : String(c))) counts.set(code, (counts.get(code) ?? 0) + 1)
  return [...counts].map(([code, n]) => n === 1 ? code : `${code} ×${n}`).join(", ")
}

/** The families in the order of issue 7; any other after them. */
const ORDER = [
  "SIGTERM under sustained load",
  "Fault injection",
  "Job queue killed at random moments",
  "Job queue chaos: three instances, one killed every ~0.5 s",
  "Bad input while draining",
  "Rolling restart behind HAProxy",
  "Adaptive drain delay (DRAIN_DELAY=auto) behind HAProxy and nginx"
]
const rank = (family: string) => ORDER.includes(family) ? ORDER.indexOf(family) : ORDER.length

/** results.json as markdown: one table per family, then the notes. */
export const renderResults = (): string => {
  const results = readResults()
  const families = [...new Set(results.scenarios.map((s) => s.family))].sort((a, b) => rank(a) - rank(b))
  const lines = [
    "# Reliability suite: figures",
    "",
    `Written by \`npm run test:reliability\` (RELIABILITY=full) on ${results.startedAt.slice(0, 10)}; ${results.machine}.`,
    "Times are from the signal sent by the test to the child's exit, as the test sees them: min / median / max.",
    "Exit code `killed`: the process was ended by the signal itself (SIGKILL), so it has none.",
    ""
  ]
  for (const family of families) {
    const scenarios = results.scenarios.filter((s) => s.family === family)
    // The signal-to-close column only where a scenario of the family measured it.
    const closes = scenarios.some((s) => s.signalToCloseMs !== undefined)
    lines.push(`## ${family}`, "")
    lines.push(
      `| scenario | trials | requests | failures |${closes ? " signal → close, ms |" : ""} signal → exit, ms | limit, ms | exit codes |`
    )
    lines.push(`| --- | ---: | ---: | ---: |${closes ? " ---: |" : ""} ---: | ---: | --- |`)
    for (const s of scenarios) {
      lines.push(
        `| ${s.scenario} | ${s.trials} | ${s.requests ?? "-"} | ${s.failures ?? "-"} |${
          closes ? ` ${spread(s.signalToCloseMs ?? [])} |` : ""
        } ${spread(s.signalToExitMs)} | ${s.limitMs ?? "-"} | ${codes(s.exitCodes)} |`
      )
    }
    lines.push("")
    for (const s of scenarios) {
      const notes = s.notes ?? []
      if (notes.length === 1) lines.push(`- ${s.scenario}: ${notes[0]}`)
      if (notes.length > 1) lines.push(`${s.scenario}:`, "", ...notes.map((note) => `- ${note}`), "")
    }
    if (lines[lines.length - 1] !== "") lines.push("")
  }
  return lines.join("\n")
}

/** Writes results.md from results.json (the global teardown of the full suite). */
export const writeResultsMd = (): void => writeFileSync(resultsMd, renderResults())
