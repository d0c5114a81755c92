#!/usr/bin/env bash
# Debian packages outside Python that a target needs. Idempotent and quiet when present.
#   bench: wrk (a C load generator, so the client costs little CPU next to the gateway)
set -euo pipefail
need=()
for cmd in "$@"; do
  command -v "$cmd" >/dev/null || need+=("$cmd")
done
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
