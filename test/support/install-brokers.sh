#!/usr/bin/env bash
# Installs the brokers the broker tests run against, when missing, from
# Debian's packages: redis-server (BullMQ), rabbitmq-server (AMQP) and
# nats-server (JetStream). Non-interactive, for CI on a fresh machine
# (CI=true, no stdin); needs root or sudo and apt-get. The tests start their
# own instances on free ports: the services the packages install are stopped
# and left disabled where the machine has a service manager.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing ${missing[*]} with apt-get..." >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2
  for service in redis-server rabbitmq-server; do
    $sudo service "$service" stop >/dev/null 2>&1 || true
  done
fi
