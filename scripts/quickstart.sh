#!/usr/bin/env bash
# The first command on a fresh machine: install what is needed, build berth,
# start berthd with its built-in defaults, import a busybox image and run a
# first container.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "quickstart: run as root" >&2; exit 1; }
source scripts/deps.sh
cargo build --release --workspace --bins
install -m 0755 target/release/berthd target/release/berth target/release/berth-shim /usr/local/bin/
sock=/run/berth/berth.sock
if ! curl -s --max-time 2 --unix-socket "$sock" http://x/_ping >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup /usr/local/bin/berthd >/var/log/berthd.log 2>&1 &
  for _ in $(seq 1 100); do
    curl -s --max-time 1 --unix-socket "$sock" http://x/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
berth version
echo

# A first image without a registry: busybox from Debian's busybox-static.
if [ -z "$(berth images -q busybox)" ]; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev}
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    # A `busybox` link would replace the binary itself with a symlink.
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf - . | berth import - busybox:latest
fi
berth run --rm busybox echo "hello from berth"

echo
echo "berthd is running (log: /var/log/berthd.log). Point the docker CLI at it with:"
echo "  export DOCKER_HOST=unix://$sock"
