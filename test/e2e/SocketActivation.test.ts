/**
 * Socket activation with systemd's own `systemd-socket-activate` (no systemd
 * as PID 1 needed): the service listens on the sockets it is passed — each
 * server on the one named after it — instead of binding; and a restart loop
 * under load, the listening socket held by the parent across restarts,
 * refuses no connection.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import { get, type Reply } from "../support/http.ts"
import { type Child, fixture, start } from "./harness.ts"

const children: Array<Child> = []
afterEach(() => {
  for (const child of children.splice(0)) child.process.kill("SIGKILL")
})

const freePorts = async (count: number): Promise<ReadonlyArray<number>> => {
  const servers = await Promise.all(Array.from({ length: count }, () =>
    new Promise<Net.Server>((resolve, reject) => {
      const server = Net.createServer().once("error", reject).listen(0, "127.0.0.1", () => resolve(server))
    })))
  const ports = servers.map((server) => (server.address() as Net.AddressInfo).port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

const ACTIVATE = "/usr/bin/systemd-socket-activate"

/**
 * `systemd-socket-activate` listening on `ports`, then running `command` (on
 * the first connection); resolves once it listens on every port.
 */
const activate = async (ports: ReadonlyArray<number>, names: ReadonlyArray<string>, env: Record<string, string>, command: ReadonlyArray<string>): Promise<Child> => {
  const [first, ...rest] = [
    ...ports.map((port) => `--listen=127.0.0.1:${port}`),
    ...(names.length > 0 ? [`--fdname=${names.join(":")}`] : []),
    ...Object.entries(env).map(([name, value]) => `--setenv=${name}=${value}`),
    ...command
  ]
  const child = start(first!, {}, { executable: ACTIVATE, args: rest })
  children.push(child)
  for (const port of ports) await child.waitFor(new RegExp(`Listening on 127\\.0\\.0\\.1:${port} as \\d+\\.`))
  return child
}

describe("socket activation (LISTEN_FDS)", () => {
  it("every server listens on the socket passed under its name — HTTP (both layers), gRPC, health — none binds its own port 0", async () => {
    const ports = await freePorts(4)
    const [grpc, health, http, api] = ports as [number, number, number, number]
    const child = await activate(ports, ["grpc", "health", "http", "api"], { SERVERS: "all" }, [process.execPath, fixture("activated.ts")])
    // The activator starts the service on the first connection; that request waits for it.
    const first = await get(http, "/")
    assert.strictEqual(first.status, 200)
    await child.waitFor(/PORTS .*\nPID \d+/)
    const printed = /PORTS http=(\d+) grpc=(\d+) health=(\d+) api=(\d+)/.exec(child.output())!.slice(1).map(Number)
    assert.deepStrictEqual(printed, [http, grpc, health, api])
    assert.strictEqual((await get(health, "/livez")).body, "alive\n")
    assert.strictEqual((await get(api, "/")).body, "api")
    const pid = Number(/PID (\d+)/.exec(child.output())![1])
    process.kill(pid, "SIGTERM")
    const { code } = await child.exited()
    assert.strictEqual(code, 0)
    assert.match(child.output(), /shutdown report: SIGTERM, graceful, exit 0/)
    assert.notMatch(child.output(), /not listened on/)
  })

  it("a restart loop under load, the socket held by the parent across restarts: no connection refused, every request answered", async () => {
    const [port] = (await freePorts(1)) as [number]
    const instances = 4
    // The parent (bash, exec'd by the activator) holds fd 3 for ever and runs
    // the service again each time it exits, with LISTEN_PID its new PID.
    const loop = `for i in $(seq 1 ${instances}); do (export LISTEN_PID=$BASHPID; exec "$0" "$1"); echo "EXITED $?"; done`
    const child = await activate([port], ["http"], {}, ["/bin/bash", "-c", loop, process.execPath, fixture("activated.ts")])

    let loading = true
    const replies: Array<Reply & { readonly sentAt: number }> = []
    const client = async () => {
      while (loading) {
        const sentAt = performance.now()
        replies.push({ ...(await get(port, "/slow?ms=20")), sentAt })
      }
    }
    const clients = Array.from({ length: 4 }, client)
    const pids: Array<number> = []
    const upAt: Array<number> = []
    const stoppedAt: Array<number> = []
    for (let i = 1; i <= instances; i++) {
      await child.waitFor(new RegExp(`(PID \\d+[\\s\\S]*){${i}}`), 30_000)
      upAt.push(performance.now())
      const pid = Number([...child.output().matchAll(/PID (\d+)/g)][i - 1]![1])
      pids.push(pid)
      // Some load on this instance, then stop it; the next one starts when it has exited.
      const servedBefore = replies.length
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (replies.length >= servedBefore + 20) {
            clearInterval(check)
            resolve()
          }
        }, 10)
      })
      if (i === instances) {
        loading = false
        await Promise.all(clients)
      }
      stoppedAt.push(performance.now())
      process.kill(pid, "SIGTERM")
      await child.waitFor(new RegExp(`(EXITED 0[\\s\\S]*){${i}}`), 30_000)
    }
    await child.exited()
    const failed = replies.filter((reply) => reply.status !== 200)
    assert.deepStrictEqual(failed.map((reply) => reply.error ?? reply.status), [], "no request failed, none refused")
    const servedBy = new Set(replies.map((reply) => Number(/served by (\d+)/.exec(reply.body)?.[1])))
    assert.deepStrictEqual([...servedBy].sort(), [...pids].sort(), "every instance served on the same socket")
    assert.strictEqual([...child.output().matchAll(/shutdown report: SIGTERM, graceful, exit 0/g)].length, instances)
    // Across each restart, requests sent after the old instance was told to stop and before the
    // next one was seen running were answered by the next one: they waited in the held socket's backlog.
    for (let i = 1; i < instances; i++) {
      const crossed = replies.filter((r) =>
        r.sentAt > stoppedAt[i - 1]! && r.sentAt < upAt[i]! && r.body === `served by ${pids[i]}`
      )
      assert.isAtLeast(crossed.length, 1, `restart ${i}: a request waited for the next instance`)
    }
  })
})
