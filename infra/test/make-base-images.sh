#!/usr/bin/env bash
# Makes local stand-ins for the public base images that infra/Dockerfile and docker-compose.yml
# name (node:20-slim, redis:7-alpine), from this machine's own node and redis binaries: CI has no
# image registry, and the Dockerfile and compose file must stay exactly what a user runs.
# The stand-ins mirror what the Dockerfile relies on in the real images: node and npm in
# /usr/local, a POSIX shell, user `node` (uid 1000); redis-server and redis-cli in /usr/local/bin.
# They also carry this machine's CA bundle (NODE_EXTRA_CA_CERTS) because HTTPS to the npm registry
# goes through an intercepting certificate authority here.
# Usage: DOCKER_HOST=... make-base-images.sh [docker-binary]
set -euo pipefail
docker=${1:-docker}
work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-base-XXXXXX")
trap 'rm -rf "$work"' EXIT

need() { command -v "$1" >/dev/null || { echo "make-base-images: $1 is required" >&2; exit 1; }; }
need busybox; need node; need redis-server; need redis-cli; need ldd

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
echo "made node:20-slim and redis:7-alpine"
