/**
 * Instructions per request, counted by valgrind's callgrind: the cost of a
 * server's request path with the machine's noise taken out. The same binary,
 * code and load give the same count within a fraction of a percent, whatever
 * else the machine is doing — where req/s and CPU time on a shared machine
 * swing by tens of percent between rounds.
 *
 * The server runs under callgrind with instrumentation off (JIT warm-up and
 * startup are not counted); after a warm-up load, instrumentation is switched
 * on for exactly `requests` requests, the counts are dumped, and the total
 * over all threads (JIT compiler and GC included) is divided by the requests.
 */
import { execFile, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

/** Whether valgrind can run here. */
export const available = async (): Promise<boolean> =>
  run("valgrind", ["--version"]).then(() => true, () => false)

/**
 * Starts `file args` under callgrind, waits for its `READY <port>` line,
 * calls `load(port, warmup)` uncounted, then `load(port, requests)` counted,
 * and returns the instructions per request.
 */
export const instructionsPerRequest = async (
  file: string,
  args: ReadonlyArray<string>,
  load: (port: number, requests: number) => Promise<number>,
  requests: number,
  warmup = requests
): Promise<number> => {
  const dir = mkdtempSync(join(tmpdir(), "callgrind-"))
  const out = join(dir, "callgrind.out")
  const child = spawn(
    "valgrind",
    ["--tool=callgrind", "--instr-atstart=no", `--callgrind-out-file=${out}`, process.execPath, file, ...args],
    { stdio: ["ignore", "pipe", "pipe"] }
  )
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let output = ""
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /READY (\d+)/.exec(output)
        if (match !== null) resolve(Number(match[1]))
      }
      child.stdout.on("data", onData)
      child.stderr.on("data", onData)
      child.once("exit", () => reject(new Error(`${file} ${args.join(" ")} exited under valgrind:\n${output}`)))
    })
    await load(port, warmup)
    const pid = String(child.pid)
    await run("callgrind_control", ["--instr=on", pid])
    const served = await load(port, requests)
    await run("callgrind_control", ["--dump", pid])
    // The dump goes to a file of its own next to `out`; the child is killed
    // without a final dump, so no other file holds a larger total.
    let total = 0
    for (const name of readdirSync(dir)) {
      const match = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, name), "utf8"))
      if (match !== null) total = Math.max(total, Number(match[1]))
    }
    if (total === 0) throw new Error(`no callgrind dump for ${file} ${args.join(" ")}`)
    return total / served
  } finally {
    child.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
  }
}
