#!/usr/bin/env bash
# Installs PostgreSQL (Debian's `postgresql`, server and client binaries) when
# no server binary is found under /usr/lib/postgresql/*/bin: the job queue's
# Postgres tests start their own server from it (test/support/postgres.ts),
# and so do its chaos runs and bench:jobs. Non-interactive (CI=true, no
# stdin); needs root or sudo and apt-get, and fails loudly otherwise. The
# package's own cluster is not used: tests run initdb in a temporary folder.
set -euo pipefail
export PATH="$PATH:/usr/sbin"

if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  ls -d /usr/lib/postgresql/*/bin/postgres | sed -n 1p
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing postgresql with apt-get..." >&2
$sudo apt-get update -qq
# policy-rc.d: the package's own cluster is not started (it would take port 5432).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql </dev/null
ls -d /usr/lib/postgresql/*/bin/postgres | sed -n 1p
