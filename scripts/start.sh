#!/usr/bin/env bash
# Installs dependencies and starts the development stack: the auth service on
# :4000 and the resource service on :4001, with the in-memory store, a generated
# signing key and the demo users and clients of services/auth/config/dev.json.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v pnpm >/dev/null || npm i -g pnpm@10
pnpm install --frozen-lockfile
pnpm exec tsc -b
exec node scripts/dev-stack.mjs "$@"
