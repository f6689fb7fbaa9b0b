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
status=0
cargo test --workspace --no-fail-fast "$@" || status=$?
# bollard's BuildKit build path: a workspace of its own, since bollard's
# buildkit feature changes the bollard-stubs types berthd is built on
# (tests/bollard-buildkit/Cargo.toml); only in a full run.
if [ "$#" = 0 ]; then
  cargo test --manifest-path tests/bollard-buildkit/Cargo.toml --target-dir target --no-fail-fast || status=$?
fi
exit "$status"
