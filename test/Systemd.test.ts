/**
 * systemd's variables as this process reads them: the sockets passed to it
 * (LISTEN_FDS for this PID only; matched by name, else in order among the
 * unnamed) and the notify settings (the watchdog only when meant for this
 * PID). test/e2e/Systemd.test.ts and SocketActivation.test.ts run them for real.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Option } from "effect"
import { Activation, parse } from "../src/internal/hosts/activation.ts"
import { address } from "../src/internal/hosts/notify.ts"
import { Systemd } from "../src/index.ts"

describe("socket activation: the sockets passed", () => {
  it("only when LISTEN_PID is this process; from fd 3 on, with their names", () => {
    assert.deepStrictEqual(parse({ LISTEN_FDS: "2", LISTEN_PID: "41" }, 42), [])
    assert.deepStrictEqual(parse({ LISTEN_FDS: "2" }, 42), [])
    assert.deepStrictEqual(parse({ LISTEN_FDS: "x", LISTEN_PID: "42" }, 42), [])
    assert.deepStrictEqual(parse({ LISTEN_FDS: "2", LISTEN_PID: "42", LISTEN_FDNAMES: "api:grpc" }, 42), [
      { fd: 3, name: "api" },
      { fd: 4, name: "grpc" }
    ])
    assert.deepStrictEqual(parse({ LISTEN_FDS: "1", LISTEN_PID: "42" }, 42), [{ fd: 3, name: "unknown" }])
  })

  it("a server takes the socket named after it, else the first unnamed one; a socket named for another server waits for it", () => {
    const passed = new Activation(parse({ LISTEN_FDS: "3", LISTEN_PID: "1", LISTEN_FDNAMES: "app.socket:grpc:health" }, 1))
    assert.deepStrictEqual(passed.claim("health"), { fd: 5, name: "health" })
    assert.deepStrictEqual(passed.claim("http"), { fd: 3, name: "app.socket" }, "systemd's default name is the unit's: unnamed")
    assert.isUndefined(passed.claim("api"), "grpc's socket is not taken by another server")
    assert.deepStrictEqual(passed.untaken, [{ fd: 4, name: "grpc" }])
    assert.deepStrictEqual(passed.claim("grpc"), { fd: 4, name: "grpc" })
    assert.isUndefined(passed.claim("grpc"), "each socket once")
  })
})

const settings = (env: Record<string, string>) =>
  Systemd.settings.pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })))

describe("Systemd.settings", () => {
  it.effect("none without NOTIFY_SOCKET; the watchdog only for this PID; the transport named", () =>
    Effect.gen(function*() {
      assert.isTrue(Option.isNone(yield* settings({ WATCHDOG_USEC: "1000000" })))
      const mine = Option.getOrThrow(yield* settings({ NOTIFY_SOCKET: "/run/n", WATCHDOG_USEC: "3000000", WATCHDOG_PID: String(process.pid) }))
      assert.deepStrictEqual([mine.socket, Duration.toMillis(Option.getOrThrow(mine.watchdog))], ["/run/n", 3000])
      const other = Option.getOrThrow(yield* settings({ NOTIFY_SOCKET: "@n", WATCHDOG_USEC: "3000000", WATCHDOG_PID: "1" }))
      assert.isTrue(Option.isNone(other.watchdog))
      const helper = Option.getOrThrow(yield* settings({ NOTIFY_SOCKET: "/run/n", SYSTEMD_NOTIFY_TRANSPORT: "helper" }))
      assert.deepStrictEqual(helper.transport, Option.some("helper"))
      const bad = yield* Effect.exit(settings({ NOTIFY_SOCKET: "/run/n", SYSTEMD_NOTIFY_TRANSPORT: "dbus" }))
      assert.isTrue(Exit.isFailure(bad))
    }))

  it("an abstract socket (@name) is addressed with a leading NUL", () => {
    assert.strictEqual(address("@/org/freedesktop/systemd1/notify"), "\0/org/freedesktop/systemd1/notify")
    assert.strictEqual(address("/run/systemd/notify"), "/run/systemd/notify")
  })
})
