#!/usr/bin/env bash
# Setup of the full reliability suite (npm run test:reliability): installs
# HAProxy (the Debian package `haproxy`) for the rolling-restart scenario if it
# is missing. Needs root or sudo and apt-get; fails loudly otherwise, and so
# does the scenario if HAProxy is still missing.
set -euo pipefail
# `sed -n 1p` rather than `head -n 1`: head exits early, and with pipefail the
# SIGPIPE haproxy then gets would fail the script.

if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
  PATH="$PATH:/usr/sbin" haproxy -v | sed -n 1p
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing haproxy with apt-get..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends haproxy
PATH="$PATH:/usr/sbin" haproxy -v | sed -n 1p
