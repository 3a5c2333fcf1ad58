#!/usr/bin/env bash
# Installs whatever this machine lacks (pnpm, redis-server, postgresql, chromium, promtool, docker), then builds, type-checks and runs every
# test. Ends with one line "N passed, N failed" and exits non-zero on any failure.
# This is the README's test command (`npm test`) and what CI runs (.ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else echo "need root for: $*" >&2; return 1; fi; }
apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq >/dev/null 2>&1; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null 2>&1
}

command -v pnpm >/dev/null || npm i -g pnpm@10 >/dev/null 2>&1 || { echo "cannot install pnpm" >&2; exit 1; }
command -v redis-server >/dev/null || apt_install redis-server || { echo "redis-server is missing and could not be installed (apt-get install redis-server)" >&2; exit 1; }
{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || apt_install postgresql || { echo "PostgreSQL is missing and could not be installed (apt-get install postgresql)" >&2; exit 1; }
[ -x /usr/bin/chromium ] || apt_install chromium || echo "warning: chromium could not be installed; the browser test will fail" >&2
command -v promtool >/dev/null || apt_install prometheus || echo "warning: prometheus (promtool) could not be installed; the alerting-rule tests will fail" >&2
{ command -v docker-compose >/dev/null && command -v dockerd >/dev/null; } || apt_install docker-compose || echo "warning: docker-compose (with docker.io) could not be installed; the container tests will fail" >&2
command -v busybox >/dev/null || apt_install busybox-static || echo "warning: busybox-static could not be installed; the container smoke test will fail" >&2

pnpm install --frozen-lockfile --reporter=silent || { echo "0 passed, 1 failed"; exit 1; }
# tap builds its plugin set at install time; .taprc swaps @tapjs/typescript for tsx, so rebuild it.
pnpm exec tap build >/dev/null || { echo "0 passed, 1 failed"; exit 1; }

pre_failed=0
echo "# build and type-check (tsc -b; tsc -p tsconfig.tests.json)"
pnpm exec tsc -b || pre_failed=$((pre_failed + 1))
pnpm exec tsc -p tsconfig.tests.json || pre_failed=$((pre_failed + 1))

export GATEHOUSE_REQUIRE_ALL=1
pnpm exec tap -R tap "$@" 2>&1 | node scripts/tap-summary.mjs "$pre_failed"
exit "${PIPESTATUS[1]}"
