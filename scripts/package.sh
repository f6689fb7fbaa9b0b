#!/usr/bin/env bash
# Builds berth's Debian package into target/debian/berth_<version>_<arch>.deb
# with Debian's own dpkg-deb, from a tree staged under target/debian/
# (no debhelper, no cargo-deb: dpkg-dev is already on any Debian build
# machine, while cargo-deb would be compiled first).
#
#   scripts/package.sh [--profile release|debug] [--version V]
#
# --profile release (default) builds the three binaries with
# `cargo build --release`; --profile debug packages the binaries already
# in target/debug (CI does this to spare a release build). --version
# defaults to the workspace's version in Cargo.toml. The binaries are
# stripped in the package. The maintainer (control file and changelog) is
# $DEBFULLNAME <$DEBEMAIL>, as for dch; by default
# "berth developers <berth@berth.invalid>": the project has no mail
# domain of its own, and .invalid (RFC 2606) says so honestly.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
version=
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile needs release or debug}; shift 2 ;;
    --profile=*) profile=${1#*=}; shift ;;
    --version) version=${2:?--version needs a version}; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$profile" in release|debug) ;; *) echo "package.sh: --profile is release or debug" >&2; exit 2 ;; esac
if [ -z "$version" ]; then
  # The first `version = "…"` of the workspace manifest: [workspace.package].
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
fi
[ -n "$version" ] || { echo "package.sh: no version in Cargo.toml" >&2; exit 1; }
maintainer="${DEBFULLNAME:-berth developers} <${DEBEMAIL:-berth@berth.invalid}>"

target=${CARGO_TARGET_DIR:-target}
bins="$target/$profile"
if [ "$profile" = release ]; then
  cargo build --release -p berthd -p berth -p berth-shim
fi
for b in berthd berth berth-shim; do
  [ -x "$bins/$b" ] || { echo "package.sh: $bins/$b is missing (--profile debug: run cargo build --workspace --bins first)" >&2; exit 1; }
done

arch=$(dpkg --print-architecture)
out="$target/debian"
mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=packaging/debian

# Binaries: berthd finds berth-shim beside itself.
install -d "$stage/usr/bin"
for b in berthd berth berth-shim; do
  install -m 0755 "$bins/$b" "$stage/usr/bin/$b"
  # As dh_strip: symbols and the compilers' .comment/.note go.
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/usr/bin/$b"
done

# systemd units (not conffiles: admins override them in /etc/systemd/system).
install -d "$stage/lib/systemd/system"
install -m 0644 "$pkg/berthd.service" "$pkg/berthd.socket" "$stage/lib/systemd/system/"

# Man pages: one per berth command, berthd(8) and berth-shim(8).
install -d "$stage/usr/share/man/man1" "$stage/usr/share/man/man8"
"$bins/berth" __man "$stage/usr/share/man/man1" 2>/dev/null
"$bins/berthd" __man "$stage/usr/share/man/man8"
install -m 0644 "$pkg/berth-shim.8" "$stage/usr/share/man/man8/"
gzip -9n "$stage"/usr/share/man/man1/*.1 "$stage"/usr/share/man/man8/*.8

# Shell completions, where each shell looks for a package's.
install -d "$stage/usr/share/bash-completion/completions" \
  "$stage/usr/share/zsh/vendor-completions" "$stage/usr/share/fish/vendor_completions.d"
"$bins/berth" completion bash >"$stage/usr/share/bash-completion/completions/berth"
"$bins/berth" completion zsh >"$stage/usr/share/zsh/vendor-completions/_berth"
"$bins/berth" completion fish >"$stage/usr/share/fish/vendor_completions.d/berth.fish"

install -d "$stage/usr/share/doc/berth"
install -m 0644 "$pkg/copyright" "$stage/usr/share/doc/berth/copyright"
install -d "$stage/usr/share/lintian/overrides"
install -m 0644 "$pkg/lintian-overrides" "$stage/usr/share/lintian/overrides/berth"
# A native package's changelog: one entry for this build.
printf 'berth (%s) unstable; urgency=medium\n\n  * Built by scripts/package.sh from %s.\n\n -- %s  %s\n' \
  "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')" "$maintainer" \
  "$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")" |
  gzip -9n >"$stage/usr/share/doc/berth/changelog.gz"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage/usr/share" -type f -exec chmod 0644 {} +

# Control area. Libraries from dpkg-shlibdeps; berthd also runs `nft`
# (its firewall) and `ps` (`docker top`). Rootless mode's helpers are
# suggested only.
install -d "$stage/DEBIAN"
shlibs=$(cd "$stage" && mkdir -p debian && : >debian/control &&
  dpkg-shlibdeps -O usr/bin/berthd usr/bin/berth usr/bin/berth-shim 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p'; rm -rf debian)
[ -n "$shlibs" ] || { echo "package.sh: dpkg-shlibdeps found no libraries" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: berth
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $shlibs, nftables, procps
Suggests: uidmap, slirp4netns, fuse-overlayfs
Section: admin
Priority: optional
Description: Docker-compatible container engine
 berth serves the Docker Engine API: the docker CLI, Compose and Docker's
 SDKs drive it. The package holds the daemon (berthd, started by
 systemd through berthd.socket), its per-container shim and the berth
 CLI, with man pages and shell completions.
CONTROL
install -m 0755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$stage/DEBIAN/"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

deb="$out/berth_${version}_${arch}.deb"
# A debug package is for tests: gzip -1 packs it several times faster
# than xz.
compress="-Zxz -z6"
[ "$profile" = debug ] && compress="-Zgzip -z1"
# shellcheck disable=SC2086 # two options
dpkg-deb --root-owner-group $compress --build "$stage" "$deb" >/dev/null
echo "$deb"
