/**
 * `DRAIN_DELAY=auto` measured behind real balancers (issue 29): rolling
 * restarts of two instances of the example service under keep-alive HTTP load,
 * the drain delay of the instance being replaced alternating, restart by
 * restart, between fixed delays and `auto` with the longest fixed one as its
 * maximum — same balancer, same load, one run.
 *
 * - HAProxy health-checks `GET /readyz` (inter 500 ms, fall 2, rise 1) in four
 *   backends (the Effect API and the Express app, each twice): once with
 *   HAProxy's defaults (retries 3 to the same server, no redispatch), once
 *   with `option redispatch` (the last retry goes to another server), each
 *   behind a frontend of its own with load of its own.
 * - nginx (open source: no active health checks) is told by a controller-like
 *   step, 300–800 ms after the SIGTERM, that the instance is gone (its
 *   upstreams rewritten, nginx reloaded), as an ingress controller does; once
 *   with the default `proxy_next_upstream error timeout`, once with it off.
 * - Low traffic behind nginx: a request every 2–3 s; `auto` (1 s..10 s) with
 *   no prober must wait for its minimum instead of closing on the first quiet
 *   moment.
 *
 * Per balancer and mode: requests and failed requests (attributed to the
 * restart during which they were sent), SIGTERM → listener closed (seen from
 * outside: a connect to the instance's port refused), SIGTERM → exit, what the
 * report says ended the drain delay. Asserted: every instance exits 0,
 * graceful; `auto` has 0 failed requests; the low-traffic delays end on
 * evidence, never before the minimum. Times are recorded, not asserted.
 *
 * Full suite only (`npm run test:reliability`, which installs HAProxy and
 * nginx first): without them this fails, it is not skipped.
 */
import { assert, describe, it } from "@effect/vitest"
import { Agent, request } from "node:http"
import * as Net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import { type Sample, startLoad } from "../../../examples/demo/load.ts"
import { freePort, launchHaproxy, makeSlots, type ServerStat, type Slot } from "../support/haproxy.ts"
import { lab, type Service } from "../support/lab.ts"
import { connect } from "../../support/http.ts"
import { startNginx } from "../support/nginx.ts"
import { logLines, shutdownReport } from "../support/report.ts"
import { record, spread } from "../support/results.ts"

const { defer, service, tempDir } = lab()

const FAMILY = "Adaptive drain delay (DRAIN_DELAY=auto) behind HAProxy and nginx"
const ROUNDS = 4
const LOOPS_PER_VARIANT = 8
const MAX_WORK_MS = 200

/** The health check: a period of 500 ms, DOWN after 2 failed checks, UP after 1. */
const CHECK = { interMs: 500, fall: 2, rise: 1 } as const
/** The controller's lag, from the SIGTERM to nginx reloaded without the instance. */
const LAG_MS = { min: 300, max: 800 } as const

interface Mode {
  readonly name: string
  readonly drainDelay: string
  /** The fixed delay, or the automatic one's minimum and maximum. */
  readonly fixedMs?: number
  readonly auto?: { readonly minMs: number; readonly maxMs: number }
}

const fixed = (ms: number): Mode => ({ name: `fixed ${ms} ms`, drainDelay: `${ms}ms`, fixedMs: ms })
const auto = (minMs: number, maxMs: number): Mode => ({
  name: `auto ${minMs} ms..${maxMs} ms`,
  drainDelay: `auto ${minMs}ms..${maxMs}ms`,
  auto: { minMs, maxMs }
})

/**
 * The delay a user would set, by the rule of the project's Kubernetes manifest
 * (DRAIN_DELAY 5 s for a probe period of 2 s × failureThreshold 1: 2.5 × the
 * balancer's detection time): HAProxy detects in inter × fall = 1 s → 2.5 s;
 * nginx's controller in at most 0.8 s → 2 s. Each balancer also gets a short
 * delay (250 ms, shorter than detection) and one of about the detection time.
 */
const HAPROXY_MODES: ReadonlyArray<Mode> = [fixed(250), fixed(1000), fixed(2500), auto(1000, 2500)]
const NGINX_MODES: ReadonlyArray<Mode> = [fixed(250), fixed(1000), fixed(2000), auto(1000, 2000)]

const instanceEnv = (slot: Slot, mode: Mode) => ({
  DRAIN_DELAY: mode.drainDelay,
  DRAIN_TIMEOUT: "2s",
  CLOSE_TIMEOUT: "500ms",
  SHUTDOWN_TIMEOUT: "15s",
  PORT: String(slot.api),
  WEB_PORT: String(slot.web),
  GRPC_PORT: String(slot.grpc)
})

/** A balancer configuration with its own frontends, load and failure count. */
interface Variant {
  readonly name: string
  readonly api: number
  readonly web: number
}

interface Balancer {
  readonly name: string
  readonly variants: ReadonlyArray<Variant>
  /** The instance in `slot` listens: resolves once the balancer routes to it. */
  readonly added: (slot: Slot) => Promise<void>
  /** The instance in `slot` got SIGTERM at `signalAt`: resolves once the balancer no longer routes there, with the time that took. */
  readonly removed: (slot: Slot, signalAt: number) => Promise<number>
  /** Counters worth a difference per restart (retries, redispatches, upstream errors), by name. */
  readonly counters: () => Promise<Readonly<Record<string, number>>>
  /** How the balancer learns that an instance is gone, in words, for the notes. */
  readonly removal: string
  /** performance.now() of each reload of the balancer's configuration (nginx), if any. */
  readonly reloads: ReadonlyArray<number>
}

interface DrainDelay {
  readonly millis: number
  readonly by: string
  readonly evidence: string
}

interface Restart {
  readonly mode: Mode
  /** performance.now() when the restart began (its replacement started): its requests are those sent from then on. */
  readonly from: number
  readonly signalAt: number
  /** From the SIGTERM to the balancer no longer routing there: HAProxy's DOWN, or the controller's reload. */
  readonly routedOffMs: number
  readonly closeMs: number
  readonly exitMs: number
  readonly code: number | null
  readonly ending: string
  readonly drainDelay: DrainDelay | undefined
  readonly counters: Readonly<Record<string, number>>
}

/** performance.now() at the first refused connection to `port`: when its listener closed, seen from outside. */
const closedAt = async (port: number): Promise<number> => {
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = Net.connect(port, "127.0.0.1", () => {
        socket.destroy()
        resolve(false)
      })
      socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
    })
    if (refused) return performance.now()
    await sleep(5)
  }
}

const accepts = (port: number): Promise<boolean> => connect(port).then((result) => result === "connected")

/** What the summary line of the report says of the drain delay, if it was automatic. */
const drainDelayOf = (output: string): DrainDelay | undefined => {
  const summary = logLines(output).find((line) => line.message === "shutdown report")?.annotations
  if (summary === undefined || typeof summary["drainDelayMillis"] !== "number") return undefined
  return {
    millis: summary["drainDelayMillis"],
    by: String(summary["drainDelayEndedBy"]),
    evidence: String(summary["drainDelayEvidence"])
  }
}

const randomBetween = (min: number, max: number) => min + Math.random() * (max - min)

/**
 * `rounds × modes` restarts of two instances in three slots, the modes in
 * turn: restart k stops the oldest instance, which was started with mode k.
 */
const rollingRestarts = async (
  balancer: Balancer,
  slots: ReadonlyArray<Slot>,
  modes: ReadonlyArray<Mode>,
  rounds: number,
  startTraffic: () => { readonly stop: () => Promise<void> }
) => {
  const total = rounds * modes.length
  const modeOf = (k: number) => modes[k % modes.length]!
  const running: Array<{ readonly slot: Slot; readonly instance: Service; readonly mode: Mode }> = []
  const startIn = async (slot: Slot, mode: Mode) => {
    const instance = service(instanceEnv(slot, mode))
    await instance.listening()
    running.push({ slot, instance, mode })
    await balancer.added(slot)
  }
  await startIn(slots[0]!, modeOf(0))
  await startIn(slots[1]!, modeOf(1))
  const traffic = startTraffic()
  await sleep(1_000)
  const restarts: Array<Restart> = []
  for (let k = 0; k < total; k++) {
    const from = performance.now()
    const before = await balancer.counters()
    const free = slots.find((slot) => !running.some((r) => r.slot === slot))!
    // The replacement is stopped N = 2 restarts later: it runs the mode of that restart.
    await startIn(free, modeOf(k + 2))
    const old = running.shift()!
    const stopping = old.instance.stop()
    const signalAt = performance.now()
    const [closed, routedOffMs, stopped] = await Promise.all([
      closedAt(old.slot.api),
      balancer.removed(old.slot, signalAt),
      stopping
    ])
    const output = old.instance.output()
    const report = shutdownReport(output)
    await sleep(500)
    const after = await balancer.counters()
    restarts.push({
      mode: old.mode,
      from,
      signalAt: stopped.sentAt,
      routedOffMs,
      closeMs: closed - stopped.sentAt,
      exitMs: stopped.elapsedMs,
      code: stopped.code,
      ending: report.ending,
      drainDelay: drainDelayOf(output),
      counters: Object.fromEntries(Object.entries(after).map(([name, n]) => [name, n - (before[name] ?? 0)]))
    })
    assert.strictEqual(stopped.code, 0, output)
    assert.strictEqual(report.ending, "graceful", output)
  }
  await traffic.stop()
  for (const { instance } of running) await instance.stop()
  return restarts
}

/** Which restart a request belongs to: the last one begun before it was sent (before the first: none). */
const restartOf = (restarts: ReadonlyArray<Restart>, sample: Sample): Restart | undefined =>
  restarts.findLast((restart) => restart.from <= sample.sentAt)

const counts = (values: ReadonlyArray<string>): string => {
  const tally = new Map<string, number>()
  for (const value of values) tally.set(value, (tally.get(value) ?? 0) + 1)
  return [...tally].map(([value, n]) => n === 1 ? value : `${value} ×${n}`).join(", ")
}

/** An evidence string with its numbers blanked, so that the same reason counts once. */
const shape = (evidence: string) => evidence.replace(/\d+(\.\d+)?\s?(ms|s)\b/g, "…").replace(/ \d+ times/g, " N times")

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN
}

/**
 * A client's keep-alive connection to nginx reset at a reload: the old worker
 * closes its idle connections while the client sends on one. The instance has
 * no part in it (nginx logs no upstream error then); counted apart.
 */
const atReload = (sample: Sample, reloads: ReadonlyArray<number>): number | undefined => {
  if (sample.outcome !== "reset") return undefined
  const reload = reloads.findLast((at) => at <= sample.endedAt)
  return reload !== undefined && sample.endedAt - reload <= 1_000 ? sample.endedAt - reload : undefined
}

interface ModeFigures {
  readonly mode: Mode
  readonly restarts: ReadonlyArray<Restart>
  /** Per variant: requests, failed, how. */
  readonly variants: ReadonlyArray<{
    readonly name: string
    readonly requests: number
    readonly failed: ReadonlyArray<Sample>
    /** Of those, the ones not reset by a reload of nginx: what the drain delay is about. */
    readonly byInstance: ReadonlyArray<Sample>
    /** For those reset by a reload: how long after it. */
    readonly reloadResetsMs: ReadonlyArray<number>
  }>
}

const figuresOf = (
  modes: ReadonlyArray<Mode>,
  restarts: ReadonlyArray<Restart>,
  reloads: ReadonlyArray<number>,
  loads: ReadonlyArray<{ readonly name: string; readonly samples: ReadonlyArray<Sample> }>
): ReadonlyArray<ModeFigures> =>
  modes.map((mode) => ({
    mode,
    restarts: restarts.filter((restart) => restart.mode === mode),
    variants: loads.map(({ name, samples }) => {
      const mine = samples.filter((sample) => restartOf(restarts, sample)?.mode === mode)
      const failed = mine.filter((sample) => sample.outcome !== "ok")
      return {
        name,
        requests: mine.length,
        failed,
        byInstance: failed.filter((sample) => atReload(sample, reloads) === undefined),
        reloadResetsMs: failed.flatMap((sample) => atReload(sample, reloads) ?? [])
      }
    })
  }))

/** Records one row per mode, with the ratio of auto's SIGTERM → close to each fixed delay that had 0 failed. */
const recordFigures = (
  balancer: Balancer,
  restarts: ReadonlyArray<Restart>,
  figures: ReadonlyArray<ModeFigures>,
  loads: ReadonlyArray<{ readonly name: string; readonly samples: ReadonlyArray<Sample> }>,
  extra: ReadonlyArray<string>
) => {
  const automatic = figures.find((f) => f.mode.auto !== undefined)!
  const autoMedian = median(automatic.restarts.map((r) => r.closeMs))
  const warmup = loads.flatMap(({ samples }) => samples.filter((sample) => restartOf(restarts, sample) === undefined))
  for (const f of figures) {
    const requests = f.variants.reduce((n, v) => n + v.requests, 0)
    // Resets at an nginx reload are the reload's, not the drain delay's: in the notes, not in this count.
    const failed = f.variants.flatMap((v) => v.byInstance)
    const closes = f.restarts.map((r) => r.closeMs)
    const counters = Object.keys(f.restarts[0]?.counters ?? {}).map((name) =>
      `${name} ${f.restarts.reduce((n, r) => n + (r.counters[name] ?? 0), 0)}`
    )
    const evidence = f.restarts.flatMap((r) => r.drainDelay === undefined ? [] : [r.drainDelay])
    const zeroFailed = f.variants.filter((v) => v.byInstance.length === 0).map((v) => v.name)
    record({
      family: FAMILY,
      scenario: `${balancer.name}: ${f.mode.name}`,
      trials: f.restarts.length,
      requests,
      failures: failed.length,
      signalToCloseMs: closes,
      signalToExitMs: f.restarts.map((r) => r.exitMs),
      exitCodes: f.restarts.map((r) => r.code),
      notes: [
        `failed per configuration: ${
          f.variants.map((v) =>
            `${v.name} ${v.byInstance.length} of ${v.requests}${
              v.byInstance.length === 0 ? "" : ` (${counts(v.byInstance.map((s) => `${s.outcome} ${s.detail}`))})`
            }`
          ).join("; ")
        }${
          f.variants.some((v) => v.reloadResetsMs.length > 0)
            ? `; besides, not counted above nor in the table: reset at an nginx reload (the client's keep-alive connection to nginx, closed by an old worker; ` +
              `no upstream error): ${f.variants.map((v) => `${v.reloadResetsMs.length}`).join(" + ")}, ended ${
                spread(f.variants.flatMap((v) => v.reloadResetsMs))
              } ms after the reload`
            : ""
        }`,
        `${balancer.removal} ${spread(f.restarts.map((r) => r.routedOffMs))} ms after the SIGTERM; ` +
        `listener closed ${spread(closes)} ms after it (min / median / max)`,
        ...(counters.length === 0 ? [] : [`balancer counters over these restarts: ${counters.join(", ")}`]),
        ...(failed.length === 0 ? [] : [
          `the failed requests ended ${
            spread(failed.map((sample) => sample.endedAt - (restartOf(restarts, sample)?.signalAt ?? NaN)))
          } ms after their restart's SIGTERM; per restart (SIGTERM → close, failed): ${
            f.restarts.map((r) => `${Math.round(r.closeMs)} ms, ${failed.filter((sample) => restartOf(restarts, sample) === r).length}`)
              .join("; ")
          }`
        ]),
        ...(f.mode.auto === undefined
          ? [
            `auto/this, median SIGTERM → close: ${(autoMedian / median(closes)).toFixed(2)} ` +
            `(0 failed with this delay: ${zeroFailed.length === 0 ? "in no configuration" : zeroFailed.join(", ")})`
          ]
          : [
            `drain delay ended ${counts(evidence.map((e) => e.by === "evidence" ? "on evidence" : "at its maximum"))}, ` +
            `after ${spread(evidence.map((e) => e.millis))} ms (report)`,
            `evidence: ${counts(evidence.map((e) => shape(e.evidence)))}`,
            `per restart: ${evidence.map((e) => `${e.millis} ms "${e.evidence}"`).join("; ")}`
          ]),
        ...(f === automatic ? extra : []),
        ...(f === figures[0] && warmup.some((s) => s.outcome !== "ok")
          ? [`before the first restart: ${warmup.filter((s) => s.outcome !== "ok").length} failed of ${warmup.length}`]
          : [])
      ]
    })
  }
}

const loadOn = (variants: ReadonlyArray<Variant>) => {
  // The gRPC port is never used (no gRPC loops): any free one.
  const loads = variants.map((variant) => ({
    name: variant.name,
    load: startLoad({ api: variant.api, web: variant.web, grpc: 1 }, { http: LOOPS_PER_VARIANT, grpc: 0, maxWorkMs: MAX_WORK_MS })
  }))
  for (const { load } of loads) defer(() => load.stop())
  return {
    samples: () => loads.map(({ name, load }) => ({ name, samples: load.samples })),
    stop: async () => void await Promise.all(loads.map(({ load }) => load.stop()))
  }
}

// ---- HAProxy -------------------------------------------------------------------

const HAPROXY_VARIANTS = ["defaults (retries 3, no redispatch)", "option redispatch"] as const

const haproxyConfig = (socket: string, slots: ReadonlyArray<Slot>, frontends: ReadonlyArray<Variant>) => {
  const backend = (name: string, port: "api" | "web", redispatch: boolean) => [
    `backend ${name}`,
    ...(redispatch ? ["  option redispatch"] : []),
    "  option httpchk GET /readyz",
    "  http-check expect status 200",
    `  default-server check inter ${CHECK.interMs} fall ${CHECK.fall} rise ${CHECK.rise}`,
    ...slots.map((slot) => `  server ${slot.name} 127.0.0.1:${slot[port]} port ${slot.api}`)
  ]
  return [
    "global",
    `  stats socket ${socket} mode 600 level admin`,
    "defaults",
    "  mode http",
    "  retries 3",
    "  timeout connect 1s",
    "  timeout client 30s",
    "  timeout server 30s",
    ...frontends.flatMap((variant, i) => [
      `frontend api${i}`,
      `  bind 127.0.0.1:${variant.api}`,
      `  default_backend api${i}`,
      `frontend web${i}`,
      `  bind 127.0.0.1:${variant.web}`,
      `  default_backend web${i}`,
      ...backend(`api${i}`, "api", i === 1),
      ...backend(`web${i}`, "web", i === 1)
    ]),
    ""
  ].join("\n")
}

const haproxy = async (slots: ReadonlyArray<Slot>): Promise<Balancer> => {
  const variants: Array<Variant> = []
  for (const name of HAPROXY_VARIANTS) variants.push({ name, api: await freePort(), web: await freePort() })
  const proxy = await launchHaproxy(tempDir(), (socket) => haproxyConfig(socket, slots, variants), defer)
  // HAProxy starts its servers UP; with no instance yet, each is DOWN after its first checks.
  await Promise.all(slots.map((slot) => proxy.waitFor(slot.name, "DOWN")))
  const sum = (rows: ReadonlyArray<ServerStat>, i: number, field: "retries" | "redispatches") =>
    rows.filter((row) => row.backend === `api${i}` || row.backend === `web${i}`).reduce((n, row) => n + row[field], 0)
  return {
    name: `HAProxy (check GET /readyz every ${CHECK.interMs} ms, fall ${CHECK.fall}, rise ${CHECK.rise})`,
    variants,
    added: async (slot) => void await proxy.waitFor(slot.name, "UP"),
    removed: async (slot, signalAt) => (await proxy.waitFor(slot.name, "DOWN")) - signalAt,
    counters: async () => {
      const rows = await proxy.stats()
      return {
        "retries (defaults)": sum(rows, 0, "retries"),
        "retries (redispatch)": sum(rows, 1, "retries"),
        "redispatches": sum(rows, 1, "redispatches")
      }
    },
    removal: "HAProxy marked it DOWN in every backend",
    reloads: []
  }
}

// ---- nginx ---------------------------------------------------------------------

const NGINX_VARIANTS = ["proxy_next_upstream error timeout (default)", "proxy_next_upstream off"] as const

const nginxHttp = (upstreams: ReadonlyArray<Slot>, frontends: ReadonlyArray<Variant>) => [
  ...(["api", "web"] as const).map((port) =>
    `upstream ${port} { ${upstreams.map((slot) => `server 127.0.0.1:${slot[port]}; `).join("")}keepalive 16; }`
  ),
  ...frontends.flatMap((variant, i) =>
    (["api", "web"] as const).map((port) =>
      `server { listen 127.0.0.1:${variant[port]}; location / { proxy_pass http://${port}; proxy_http_version 1.1; ` +
      `proxy_set_header Connection ""; ${i === 1 ? "proxy_next_upstream off; " : ""}} }`
    )
  )
]

const nginx = async (slots: ReadonlyArray<Slot>, names: ReadonlyArray<string>): Promise<Balancer & { readonly lags: Array<number> }> => {
  const variants: Array<Variant> = []
  for (const name of names) variants.push({ name, api: await freePort(), web: await freePort() })
  // The controller's view: the instances it routes to.
  const routed = new Set<Slot>()
  const http = () => nginxHttp(slots.filter((slot) => routed.has(slot)), variants)
  // Until the first instance is added, the upstreams name the first slot (an upstream needs a server).
  routed.add(slots[0]!)
  const proxy = await startNginx(tempDir(), http(), () => accepts(variants[0]!.api), defer)
  routed.delete(slots[0]!)
  const lags: Array<number> = []
  const reloads: Array<number> = []
  const reload = () => {
    reloads.push(performance.now())
    return proxy.reload(http())
  }
  const errors = () => proxy.errors().split("\n")
  return {
    name: `nginx (a controller removes the instance ${LAG_MS.min}–${LAG_MS.max} ms after its SIGTERM and reloads)`,
    variants,
    lags,
    added: async (slot) => {
      routed.add(slot)
      await reload()
      // The new workers take a moment to start.
      await sleep(200)
    },
    removed: async (slot, signalAt) => {
      const lag = randomBetween(LAG_MS.min, LAG_MS.max)
      lags.push(lag)
      await sleep(lag - (performance.now() - signalAt))
      routed.delete(slot)
      await reload()
      return performance.now() - signalAt
    },
    counters: async () => {
      const lines = errors()
      return {
        "upstream connect() refused": lines.filter((line) => /connect\(\) failed \(111/.test(line)).length,
        "upstream closed or reset": lines.filter((line) => /prematurely closed|reset by peer/.test(line)).length
      }
    },
    removal: "the controller reloaded nginx without it",
    reloads
  }
}

describe("DRAIN_DELAY=auto behind real balancers: rolling restarts, fixed delays and auto in turn", () => {
  it(`HAProxy health checks: ${ROUNDS} restarts per mode under keep-alive load`, async () => {
    const slots = await makeSlots(["s1", "s2", "s3"])
    const balancer = await haproxy(slots)
    let load: ReturnType<typeof loadOn> | undefined
    const restarts = await rollingRestarts(balancer, slots, HAPROXY_MODES, ROUNDS, () => load = loadOn(balancer.variants))
    const loads = load!.samples()
    const figures = figuresOf(HAPROXY_MODES, restarts, balancer.reloads, loads)
    assert.deepStrictEqual(figures.flatMap((f) => f.variants.flatMap((v) => v.reloadResetsMs)), [], "HAProxy never reloads")
    recordFigures(balancer, restarts, figures, loads, [
      `load: ${LOOPS_PER_VARIANT} keep-alive HTTP loops per configuration (Effect API and Express alternating), ` +
      `requests of 0–${MAX_WORK_MS} ms; the two configurations' four backends check the same /readyz from one address`
    ])
    const automatic = figures.find((f) => f.mode.auto !== undefined)!
    for (const variant of automatic.variants) {
      assert.deepStrictEqual(variant.byInstance, [], `auto, ${variant.name}: ${variant.byInstance.length} of ${variant.requests} failed`)
    }
  }, 600_000)

  it(`nginx with a controller's reload: ${ROUNDS} restarts per mode under keep-alive load`, async () => {
    const slots = await makeSlots(["s1", "s2", "s3"])
    const balancer = await nginx(slots, NGINX_VARIANTS)
    let load: ReturnType<typeof loadOn> | undefined
    const restarts = await rollingRestarts(balancer, slots, NGINX_MODES, ROUNDS, () => load = loadOn(balancer.variants))
    const loads = load!.samples()
    const figures = figuresOf(NGINX_MODES, restarts, balancer.reloads, loads)
    recordFigures(balancer, restarts, figures, loads, [
      `load: ${LOOPS_PER_VARIANT} keep-alive HTTP loops per configuration (Effect API and Express alternating), ` +
      `requests of 0–${MAX_WORK_MS} ms; no prober: the rule rests on the quiet period, held back by the minimum`
    ])
    const automatic = figures.find((f) => f.mode.auto !== undefined)!
    for (const variant of automatic.variants) {
      assert.deepStrictEqual(variant.byInstance, [], `auto, ${variant.name}: ${variant.byInstance.length} of ${variant.requests} failed`)
    }
  }, 600_000)

  it("low traffic behind nginx: a request every 2–3 s, auto waits for its minimum", async () => {
    const slots = await makeSlots(["s1", "s2", "s3"])
    const balancer = await nginx(slots, [NGINX_VARIANTS[0]])
    const mode: Mode = { name: "auto (1 s..10 s, the default)", drainDelay: "auto", auto: { minMs: 1000, maxMs: 10_000 } }
    const variant = balancer.variants[0]!
    const samples: Array<Sample> = []
    const sparse = () => {
      let running = true
      const agent = new Agent({ keepAlive: true })
      const loop = (async () => {
        for (let i = 0; running; i++) {
          const sentAt = performance.now()
          const port = i % 2 === 0 ? variant.api : variant.web
          const result = await new Promise<{ outcome: Sample["outcome"]; detail: string }>((resolve) => {
            request({ host: "127.0.0.1", port, path: "/work?ms=0", agent }, (response) => {
              response.resume()
              response.on("end", () => resolve(response.statusCode === 200 ? { outcome: "ok", detail: "200" } : { outcome: "failed", detail: String(response.statusCode) }))
            }).on("error", (error: NodeJS.ErrnoException) => resolve({ outcome: "failed", detail: error.code ?? error.message })).end()
          })
          samples.push({ kind: "http", sentAt, endedAt: performance.now(), ...result })
          await sleep(randomBetween(2_000, 3_000))
        }
      })()
      return {
        stop: async () => {
          running = false
          await loop
          agent.destroy()
        }
      }
    }
    const restarts = await rollingRestarts(balancer, slots, [mode], ROUNDS, sparse)
    const evidence = restarts.map((r) => r.drainDelay)
    const failed = samples.filter((sample) => sample.outcome !== "ok" && atReload(sample, balancer.reloads) === undefined)
    const resets = samples.filter((sample) => atReload(sample, balancer.reloads) !== undefined)
    record({
      family: FAMILY,
      scenario: `low traffic behind nginx (a request every 2–3 s): ${mode.name}`,
      trials: restarts.length,
      requests: samples.length,
      failures: failed.length,
      signalToCloseMs: restarts.map((r) => r.closeMs),
      signalToExitMs: restarts.map((r) => r.exitMs),
      exitCodes: restarts.map((r) => r.code),
      notes: [
        `no prober; requests after a SIGTERM: ${
          restarts.map((r) => samples.filter((s) => s.sentAt >= r.signalAt && s.sentAt < r.signalAt + r.closeMs).length).join(", ")
        } (per restart, before the listener closed)`,
        `drain delay ended ${counts(evidence.map((e) => e === undefined ? "?" : e.by === "evidence" ? "on evidence" : "at its maximum"))} ` +
        `after ${spread(evidence.flatMap((e) => e === undefined ? [] : [e.millis]))} ms (report; the minimum is ${mode.auto?.minMs} ms, ` +
        `the quiet period 500 ms)`,
        `evidence: ${counts(evidence.map((e) => shape(e?.evidence ?? "?")))}`,
        `the controller reloaded nginx without it ${spread(restarts.map((r) => r.routedOffMs))} ms after the SIGTERM`,
        ...(resets.length === 0 ? [] : [`besides, ${resets.length} reset at an nginx reload (not counted as failures)`])
      ]
    })
    assert.deepStrictEqual(failed, [])
    for (const e of evidence) {
      assert.isDefined(e)
      assert.strictEqual(e?.by, "evidence")
      assert.isAtLeast(e?.millis ?? 0, 1000, "never before the minimum")
      assert.match(e?.evidence ?? "", /^no prober; /)
    }
  }, 600_000)
})
