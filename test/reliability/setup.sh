#!/usr/bin/env bash
# Setup of the full reliability suite (npm run test:reliability): installs the
# Debian packages its scenarios run against, when missing — HAProxy (the
# rolling restart), h2load (nghttp2-client: HTTP/2 streams through a SIGTERM),
# nginx (a handoff behind a proxy). Needs root or sudo and apt-get; fails
# loudly otherwise, and so do the scenarios whose tool is still missing.
set -euo pipefail
# `sed -n 1p` rather than `head -n 1`: head exits early, and with pipefail the
# SIGPIPE a tool then gets would fail the script.

export PATH="$PATH:/usr/sbin"
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
# Prometheus: scrapes /metrics through a shutdown (full/prometheus.test.ts).
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing ${missing[*]} with apt-get..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
haproxy -v | sed -n 1p
h2load --version | sed -n 1p
nginx -v 2>&1 | sed -n 1p
prometheus --version 2>&1 | sed -n 1p
