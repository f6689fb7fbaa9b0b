#!/usr/bin/env bash
# The first command on a fresh machine: install what is needed, build berth,
# start berthd with its built-in defaults and talk to it.
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
echo "berthd is running (log: /var/log/berthd.log). Point the docker CLI at it with:"
echo "  export DOCKER_HOST=unix://$sock"
