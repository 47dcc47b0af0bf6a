#!/usr/bin/env bash
# Every Debian package the test suite starts real servers from, in one apt-get
# run on a fresh machine (CI): the brokers (redis-server, rabbitmq-server,
# nats-server), PostgreSQL, and the systemd tools. Then each part's own script
# checks its part (and stops the services the packages start). Non-interactive;
# needs root or sudo.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v systemd-socket-activate >/dev/null 2>&1 || missing+=(systemd)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing ${missing[*]} with apt-get..." >&2
  # The packages' own services are not started (a cluster on 5432, a broker on its default port).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2
fi
bash "$here/install-brokers.sh"
bash "$here/install-postgres.sh"
bash "$here/install-hosts.sh"
