import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Report } from "../src/index.ts"
import { captureLogs } from "./support/logs.ts"

const report: Report.Report = {
  reason: "SIGTERM",
  ending: "graceful",
  exitCode: 1,
  totalMillis: 507,
  rows: [
    { name: "jobs", kind: "worker", outcome: "done", millis: 301, inFlightAtDrain: 1, inFlightAtEnd: 0, detail: undefined },
    {
      name: "broker",
      kind: "closer",
      outcome: "timed out",
      millis: 300,
      inFlightAtDrain: undefined,
      inFlightAtEnd: undefined,
      detail: "abandoned after 300ms"
    },
    { name: "db", kind: "closer", outcome: "abandoned", millis: undefined, inFlightAtDrain: undefined, inFlightAtEnd: undefined, detail: "never began closing" }
  ]
}

describe("Report", () => {
  it("formats one aligned row per resource under a title with reason, ending, exit code and total time", () => {
    assert.strictEqual(
      Report.format(report),
      [
        "shutdown report: SIGTERM, graceful, exit 1, 507 ms",
        "  name    kind    outcome    ms   in flight (drain → end)  detail",
        "  jobs    worker  done       301  1 → 0",
        "  broker  closer  timed out  300  -                        abandoned after 300ms",
        "  db      closer  abandoned  -    -                        never began closing"
      ].join("\n")
    )
  })

  it("says how an automatic drain delay ended, in the title", () => {
    const title = Report.format({
      ...report,
      rows: [],
      drainDelay: { by: "evidence", millis: 1250, evidence: "its prober answered not ready 3 times (10.0.0.5 (every 500ms)); no request for 500ms" }
    })
    assert.strictEqual(
      title,
      "shutdown report: SIGTERM, graceful, exit 1, 507 ms; drain delay 1250 ms, ended on evidence: " +
        "its prober answered not ready 3 times (10.0.0.5 (every 500ms)); no request for 500ms"
    )
    const atMaximum = Report.format({ ...report, rows: [], drainDelay: { by: "maximum", millis: 10_000, evidence: "still missing: x" } })
    assert.match(atMaximum, /; drain delay 10000 ms, ended at its maximum: still missing: x$/)
  })

  it.effect("logs text as one warning when the exit code is not 0, JSON as a line per row and a summary", () => {
    const { logs, provide } = captureLogs()
    return Effect.gen(function*() {
      yield* Report.log(report, "text")
      assert.deepStrictEqual(logs.map((log) => [log.level, log.text]), [["Warn", Report.format(report)]])
      logs.length = 0
      yield* Report.log({ ...report, exitCode: 0 }, "json")
      assert.deepStrictEqual(logs.map((log) => [log.level, log.text]), [
        ["Info", "shutdown report row"],
        ["Info", "shutdown report row"],
        ["Info", "shutdown report row"],
        ["Info", "shutdown report"]
      ])
    }).pipe(provide)
  })
})
