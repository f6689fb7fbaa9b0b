#!/usr/bin/env bash
# The test command: installs test dependencies, builds every binary, runs
# the unit tests and the end-to-end tests (real berthd, real docker CLI);
# every suite runs even after one fails, so a run reports all failures.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (namespaces, mounts, cgroups)" >&2; exit 1; }
source scripts/deps.sh
command -v docker >/dev/null || { echo "test.sh: the docker CLI (28.x) must be on PATH" >&2; exit 1; }
docker --version
cargo build --workspace --bins

# What test daemons leave on the host if a test does not clean up: links
# (default bridges `bt*`, network bridges `br-*`, veths), nftables tables
# (`berth_t*`), mounts under scratch dirs (`berth-e2e-*`), container cgroups
# (`/berth-bt*`) and live berthd/shim/holder/slirp4netns/fuse-overlayfs
# processes (zombies aside: this sandbox's pid 1 reaps no orphans).
leftovers() {
  ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print "link " $2}' | grep -E '^link (bt|br-|veth)' || true
  { nft list tables 2>/dev/null || true; } | awk '$3 ~ /^berth_t/ {print "nft " $2 " " $3}'
  awk '$2 ~ /berth-e2e-/ {print "mount " $2}' /proc/self/mounts
  { find /sys/fs/cgroup -maxdepth 3 -type d -name 'berth-bt*' 2>/dev/null || true; } | sed 's/^/cgroup /'
  ps -eo pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 ~ /^(berthd|berth-shim|berth-holder|slirp4netns|fuse-overlayfs)$/ {print "process " $3 " " $1}'
}
before=$(leftovers | sort)

status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# bollard's BuildKit build path: a workspace of its own, since bollard's
# buildkit feature changes the bollard-stubs types berthd is built on
# (tests/bollard-buildkit/Cargo.toml); only in a full run.
if [ "$#" = 0 ]; then
  cargo test --manifest-path tests/bollard-buildkit/Cargo.toml --target-dir target --no-fail-fast || status=$?
fi
# A full run leaves the host as it found it.
if [ "$#" = 0 ]; then
  leaked=$(comm -13 <(echo "$before") <(leftovers | sort))
  if [ -n "$leaked" ]; then
    echo "test.sh: the tests left these behind:" >&2
    echo "$leaked" >&2
    status=1
  fi
fi
exit "$status"
