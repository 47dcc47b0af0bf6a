/**
 * The example service (examples/main.ts) under PM2, in cluster mode: two
 * workers share each port through the cluster primary (the PM2 daemon), so
 * `pm2 reload example` replaces them one at a time with no connection refused.
 * No REUSE_PORT: the primary holds the listening sockets.
 *
 *   npx pm2 start examples/pm2/ecosystem.config.cjs
 *   npx pm2 reload example       # a new worker is ready, then the old one drains
 *   npx pm2 stop example         # each worker drains and writes its shutdown report
 *
 * The daemon must run on Node 24: PM2 forks cluster workers with the Node
 * that runs the daemon, whatever `interpreter` says. `npx pm2` (or
 * `node_modules/.bin/node node_modules/pm2/bin/pm2`) starts it on this
 * project's Node; a daemon already running on an older Node keeps running the
 * workers on it until `pm2 kill`.
 *
 * The timings: it sets DRAIN_DELAY and SHUTDOWN_TIMEOUT; the library derives
 * the rest by its budget rule (test/pm2.test.ts derives them again):
 *
 *   drain timeout 19.333s   (of the 29 s the drain delay leaves of the shutdown timeout, 4 parts of 6)
 *   close timeout 4.833s    (1 part of 6; the sixth is spare)
 */
const path = require("node:path")

/** The library's own deadline: Main.runMain exits by then, whatever is still open. */
const SHUTDOWN_TIMEOUT_MS = 30_000
/** Time for the report and the exit after our deadline, before PM2's SIGKILL. */
const KILL_MARGIN_MS = 5_000

module.exports = {
  apps: [{
    name: "example",
    cwd: path.join(__dirname, "../.."),
    script: "examples/main.ts",
    exec_mode: "cluster",
    instances: 2,
    // Main.runMain sends 'ready' once every layer is up (all ports listen):
    // only then does PM2 count the worker started, and a reload stop the old
    // one. Without the message PM2 would wait out listen_timeout each time.
    wait_ready: true,
    // How long PM2 waits for 'ready' (a start takes about a second here).
    listen_timeout: 10_000,
    // PM2 stops a worker with SIGINT (there is no per-app kill_signal; the
    // daemon-wide PM2_KILL_SIGNAL changes it) and SIGKILLs it kill_timeout ms
    // later. PM2's default, 1600 ms, cuts any longer drain: a 3 s request in
    // flight is lost and no shutdown report is written. So: at least
    // SHUTDOWN_TIMEOUT plus a margin.
    kill_timeout: SHUTDOWN_TIMEOUT_MS + KILL_MARGIN_MS,
    env: {
      // Through the drain delay the old worker still serves, and each
      // response carries `Connection: close`: keep-alive clients move to the
      // other workers on their next request. At its end the listeners close
      // (the cluster primary hands the worker nothing more) and the idle
      // keep-alive connections are closed; a client sending on one just then
      // gets a reset. With 0, every keep-alive client is in that race (3, 13
      // and 18 resets in three runs of the full suite's 5 reloads); with 1 s,
      // none was: only clients idle for longer than that are left in it.
      // Raise it if a balancer in front polls /readyz.
      DRAIN_DELAY: "1s",
      SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`,
      LOG_FORMAT: "json"
    }
  }]
}
