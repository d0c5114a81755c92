#!/usr/bin/env bash
# Debian packages outside Python that a target needs. Idempotent and quiet when present.
#   bench: wrk (a C load generator, so the client costs little CPU next to the gateway),
#          nginx:nginx-light (the C reverse proxy the gateway is compared with)
#   test: redis-server, PostgreSQL, nginx, chromium + chromedriver (the console tests)
#         (an argument `command:package` when the two names differ)
#   test, image: lua5.4 (Argo CD health scripts), buildah and debootstrap (the container image)
set -euo pipefail
need=()
for arg in "$@"; do
  cmd="${arg%%:*}"; pkg="${arg#*:}"
  command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
