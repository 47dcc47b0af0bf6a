#!/usr/bin/env bash
# The Debian packages the hosts' tests run against (test/e2e/Systemd.test.ts,
# SocketActivation.test.ts, Memory.test.ts, test/systemdUnits.test.ts), installed
# when missing: systemd (systemd-socket-activate, systemd-notify, systemd-analyze;
# no systemd as PID 1 needed) and python3 (the test's own notify socket, and the
# notify helper). Needs root or sudo and apt-get; non-interactive (CI=true, no stdin).
set -euo pipefail
missing=()
command -v systemd-socket-activate >/dev/null 2>&1 || missing+=(systemd)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing ${missing[*]} with apt-get..."
  $sudo apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
systemd-socket-activate --version | sed -n 1p
python3 --version
# The real-cgroup test makes a memory cgroup of its own under the process's (v1 memory controller).
grep -q ' - cgroup .*memory' /proc/self/mountinfo && echo "cgroup v1 memory controller: mounted" || echo "cgroup v1 memory controller: NOT mounted (test/e2e/Memory.test.ts's real-cgroup tests will fail)"
