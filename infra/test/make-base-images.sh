#!/usr/bin/env bash
# Makes local stand-ins for the public base images that infra/Dockerfile and docker-compose.yml
# name (node:20-slim, redis:7-alpine, postgres:15-alpine), from this machine's own node, redis and
# PostgreSQL 15 binaries: CI has no image registry, and the Dockerfile and compose file must stay
# exactly what a user runs.
# The stand-ins mirror what the Dockerfile and compose file rely on in the real images: node and
# npm in /usr/local, a POSIX shell, user `node` (uid 1000); redis-server and redis-cli in
# /usr/local/bin; for PostgreSQL, the official image's entrypoint contract (postgres-entrypoint.sh
# below): POSTGRES_USER, POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, POSTGRES_DB, a cluster
# created on the first start in PGDATA, listening on every address, run as user `postgres` (uid 70).
# They also carry this machine's CA bundle (NODE_EXTRA_CA_CERTS) because HTTPS to the npm registry
# goes through an intercepting certificate authority here.
# Usage: DOCKER_HOST=... make-base-images.sh [docker-binary]
set -euo pipefail
docker=${1:-docker}
work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-base-XXXXXX")
trap 'rm -rf "$work"' EXIT

need() { command -v "$1" >/dev/null || { echo "make-base-images: $1 is required" >&2; exit 1; }; }
need busybox; need node; need redis-server; need redis-cli; need ldd
pg_bin=/usr/lib/postgresql/15/bin
[ -x "$pg_bin/postgres" ] || { echo "make-base-images: PostgreSQL 15 is required in $pg_bin (apt-get install postgresql)" >&2; exit 1; }

# copy_bin ROOTFS SRC DEST: the binary at DEST inside ROOTFS, with every shared library ldd lists.
copy_bin() {
  local rootfs=$1 src=$2 dest=$3 lib
  mkdir -p "$rootfs$(dirname "$dest")"
  cp -L "$src" "$rootfs$dest"
  for lib in $(ldd "$src" | awk '/=> \// {print $3} /^[[:space:]]*\/lib/ {print $1}'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -Ln "$lib" "$rootfs$lib"
  done
}

# base_fs ROOTFS: busybox as /bin/sh and the usual applets, users, /tmp, the CA bundle.
base_fs() {
  local rootfs=$1 applet
  mkdir -p "$rootfs"/{bin,etc,tmp,root,usr/bin,usr/local/bin,etc/ssl/certs,lib64}
  chmod 1777 "$rootfs/tmp"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for applet in $(busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  ln -s /bin/env "$rootfs/usr/bin/env" # `#!/usr/bin/env node` scripts (npm, pnpm)
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nredis:x:999:999::/data:/bin/false\nnobody:x:65534:65534::/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nredis:x:999:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # The whole C library, as a Debian base image has it: native addons (@node-rs/argon2) load
  # libraries node itself does not (librt).
  local lib
  for lib in $(dpkg -L libc6 libgcc-s1 libstdc++6 2>/dev/null | grep -E '^/(usr/)?lib(64|/x86_64-linux-gnu)?/[^/]*\.so' || true); do
    [ -e "$lib" ] || continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -Ln "$lib" "$rootfs$lib"
  done
}

# node:20-slim
node_fs="$work/node"
base_fs "$node_fs"
copy_bin "$node_fs" "$(command -v node)" /usr/local/bin/node
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$node_fs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$node_fs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$node_fs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$node_fs/usr/local/bin/npx"
mkdir -p "$node_fs/home/node" && chown 1000:1000 "$node_fs/home/node"
tar -C "$node_fs" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_VERSION='"$(node -p process.versions.node)" \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' \
  - node:20-slim >/dev/null

# redis:7-alpine
redis_fs="$work/redis"
base_fs "$redis_fs"
copy_bin "$redis_fs" "$(command -v redis-server)" /usr/local/bin/redis-server
copy_bin "$redis_fs" "$(command -v redis-cli)" /usr/local/bin/redis-cli
mkdir -p "$redis_fs/data" && chown 999:999 "$redis_fs/data"
tar -C "$redis_fs" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'WORKDIR /data' \
  --change 'EXPOSE 6379' \
  --change 'CMD ["redis-server"]' \
  - redis:7-alpine >/dev/null

# postgres:15-alpine. Debian's binaries keep their own layout (/usr/lib/postgresql/15/{bin,lib},
# /usr/share/postgresql/15: the server finds its libraries and share files relative to its own
# path), linked into /usr/local/bin as in the official image. Every server module but the LLVM
# JIT (hundreds of MB of LLVM; without it the server simply does not JIT-compile).
pg_fs="$work/postgres"
base_fs "$pg_fs"
mkdir -p "$pg_fs/usr/lib/postgresql/15/lib"
cp -a "$pg_bin" "$pg_fs/usr/lib/postgresql/15/bin"
find /usr/lib/postgresql/15/lib -maxdepth 1 -name '*.so' ! -name 'llvmjit*' -exec cp -t "$pg_fs/usr/lib/postgresql/15/lib" {} +
for bin in "$pg_bin"/*; do ln -s "$bin" "$pg_fs/usr/local/bin/$(basename "$bin")"; done
# The shared libraries of all of them, found by one ldd (one per file is minutes on a busy machine).
for lib in $( { ldd "$pg_fs"/usr/lib/postgresql/15/bin/* "$pg_fs"/usr/lib/postgresql/15/lib/*.so 2>/dev/null || true; } \
  | awk '/=> \// {print $3} /^[[:space:]]+\/lib/ {print $1}' | sort -u); do
  mkdir -p "$pg_fs$(dirname "$lib")"
  cp -Ln "$lib" "$pg_fs$lib"
done
mkdir -p "$pg_fs/usr/share/postgresql" "$pg_fs/usr/share/zoneinfo"
cp -a /usr/share/postgresql/15 "$pg_fs/usr/share/postgresql/15"
cp -a /usr/share/zoneinfo/. "$pg_fs/usr/share/zoneinfo/"
printf 'postgres:x:70:70::/var/lib/postgresql:/bin/sh\n' >>"$pg_fs/etc/passwd"
printf 'postgres:x:70:\n' >>"$pg_fs/etc/group"
mkdir -p "$pg_fs/var/lib/postgresql/data" "$pg_fs/var/run/postgresql"
chown -R 70:70 "$pg_fs/var/lib/postgresql" "$pg_fs/var/run/postgresql"
chmod 1777 "$pg_fs/var/lib/postgresql/data"
chmod 2777 "$pg_fs/var/run/postgresql"
cp "$(dirname "$0")/postgres-entrypoint.sh" "$pg_fs/usr/local/bin/docker-entrypoint.sh"
chmod 0755 "$pg_fs/usr/local/bin/docker-entrypoint.sh"
tar -C "$pg_fs" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PG_MAJOR=15' \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'VOLUME /var/lib/postgresql/data' \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'EXPOSE 5432' \
  --change 'CMD ["postgres"]' \
  - postgres:15-alpine >/dev/null
echo "made node:20-slim, redis:7-alpine and postgres:15-alpine"
