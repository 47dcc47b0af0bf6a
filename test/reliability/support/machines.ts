/**
 * Machines of their own for one scenario (Linux, root): each a network
 * namespace joined to this one by a veth pair — its own loopback, its own
 * address, and a route to the host's side of the pair only. A service started
 * in one reaches a server on the host through that address, as another
 * machine on the network would, and nothing else of this machine's network.
 *
 * Deleted after the test, also when it fails: every process still inside (one
 * this run started) is SIGKILLed by its id first; deleting the namespace
 * removes its end of the pair, and with it the host's.
 */
import { execFileSync } from "node:child_process"
import { ip, remove } from "./netns.ts"

export interface Machine {
  readonly name: string
  /** The host's side of the link: what the machine connects to. */
  readonly hostAddress: string
  /** The machine's own address. */
  readonly address: string
  /** The command prefix that runs a program inside: `ip netns exec <name>`. */
  readonly exec: ReadonlyArray<string>
}


let made = 0

/**
 * Makes `count` machines; `defer` registers their deletion. Addresses are
 * 10.<a>.<b>.1 (host) and .2 (machine), /30 links in a block of this process's
 * own, so that test files running at once never share one.
 */
export const makeMachines = (count: number, defer: (cleanup: () => unknown) => void): ReadonlyArray<Machine> =>
  Array.from({ length: count }, () => {
    const n = ++made
    const block = 100 + (process.pid % 100)
    const [a, b] = [block, (n * 4) % 256]
    const name = `egm${process.pid % 100000}-${n}`
    const [outside, inside] = [`egh${process.pid % 10000}x${n}`, `egn${process.pid % 10000}x${n}`]
    ip(["netns", "add", name])
    defer(() => remove(name))
    ip(["link", "add", outside, "type", "veth", "peer", "name", inside])
    ip(["link", "set", inside, "netns", name])
    const hostAddress = `10.${a}.${b}.1`
    const address = `10.${a}.${b}.2`
    ip(["addr", "add", `${hostAddress}/30`, "dev", outside])
    ip(["link", "set", outside, "up"])
    const exec = ["ip", "netns", "exec", name]
    const run = (args: ReadonlyArray<string>) => execFileSync(exec[0]!, [...exec.slice(1), ...args], { stdio: "ignore" })
    run(["ip", "addr", "add", `${address}/30`, "dev", inside])
    run(["ip", "link", "set", inside, "up"])
    run(["ip", "link", "set", "lo", "up"])
    return { name, hostAddress, address, exec }
  })
