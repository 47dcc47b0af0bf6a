/**
 * The shutdown as a trace, end to end: a child process under `Main.runMain`
 * with Effect's `OtlpTracer` as its telemetry, a local OTLP/HTTP receiver
 * (JSON) here, a real SIGTERM. The spans arrive before the process exits —
 * the runner flushes the tracer — also when a second signal forces the exit.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { type Child, fixture, start } from "./harness.ts"

interface Span {
  readonly name: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly attributes: ReadonlyArray<{ readonly key: string; readonly value: Record<string, unknown> }>
}

/** An OTLP/HTTP receiver: the spans of every POST to /v1/traces, and the service that sent them. */
const receiver = async () => {
  const spans: Array<Span> = []
  const services: Array<string> = []
  const server: Server = createServer((request, response) => {
    let body = ""
    request.on("data", (chunk: Buffer) => body += chunk.toString())
    request.on("end", () => {
      if (request.url === "/v1/traces") {
        const data = JSON.parse(body) as {
          resourceSpans: ReadonlyArray<{
            resource: { attributes: ReadonlyArray<{ key: string; value: { stringValue?: string } }> }
            scopeSpans: ReadonlyArray<{ spans: ReadonlyArray<Span> }>
          }>
        }
        for (const resource of data.resourceSpans) {
          services.push(resource.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "")
          for (const scope of resource.scopeSpans) spans.push(...scope.spans)
        }
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { spans, services, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, close: () => server.close() }
}

const attribute = (span: Span | undefined, key: string) => {
  const value = span?.attributes.find((a) => a.key === `effect_graceful.${key}`)?.value
  return value === undefined ? undefined : value["stringValue"] ?? Number(value["intValue"])
}

/** Each span as `name ← parent name`. */
const tree = (spans: ReadonlyArray<Span>) => {
  const names = new Map(spans.map((span) => [span.spanId, span.name]))
  return spans.map((span) => `${span.name} ← ${span.parentSpanId === undefined || span.parentSpanId === "" ? "-" : names.get(span.parentSpanId)}`)
}

let child: Child | undefined
let otlp: Awaited<ReturnType<typeof receiver>> | undefined
afterEach(() => {
  child?.process.kill("SIGKILL")
  otlp?.close()
})

describe("the shutdown's spans over OTLP", () => {
  it("SIGTERM: shutdown, its phases and each resource arrive before the exit", async () => {
    otlp = await receiver()
    child = start(fixture("otlp.ts"), { OTLP_URL: otlp.url })
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 0, child.output())
    const spans = otlp.spans.filter((span) => ["shutdown", "draining", "stopping", "http web", "closer db"].includes(span.name))
    assert.sameMembers(tree(spans), ["shutdown ← -", "draining ← shutdown", "stopping ← shutdown", "http web ← stopping", "closer db ← stopping"])
    const root = spans.find((span) => span.name === "shutdown")
    assert.deepStrictEqual([attribute(root, "reason"), attribute(root, "ending"), attribute(root, "exit_code")], ["SIGTERM", "graceful", 0])
    assert.strictEqual(attribute(spans.find((span) => span.name === "closer db"), "outcome"), "done")
    assert.include(otlp.services, "otlp-fixture")
  })

  it("a second SIGTERM forces the exit: the spans still arrive, the hung closer's outcome says so", async () => {
    otlp = await receiver()
    child = start(fixture("otlp.ts"), { OTLP_URL: otlp.url, HUNG: "1" })
    await child.waitFor(/READY/)
    child.signal("SIGTERM")
    // The closer never finishes: the shutdown is still on when the second signal comes.
    await child.waitFor(/quit event \(SIGTERM\)/)
    child.signal("SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 143, child.output())
    const root = otlp.spans.find((span) => span.name === "shutdown")
    assert.deepStrictEqual([attribute(root, "ending"), attribute(root, "exit_code")], ["forced", 143])
    assert.strictEqual(attribute(otlp.spans.find((span) => span.name === "closer db"), "outcome"), "abandoned")
  })
})
