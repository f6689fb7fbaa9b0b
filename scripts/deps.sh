#!/usr/bin/env bash
# System packages berth needs to build, run and test, on Debian 12.
# Installs only what is missing, so a warm machine skips apt entirely.
set -euo pipefail
pkgs=(pkg-config libseccomp-dev libssl-dev busybox-static iproute2 iptables nftables
      curl ca-certificates openssl skopeo docker-registry apache2-utils psmisc procps python3)
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
