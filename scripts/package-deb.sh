#!/usr/bin/env bash
# Build the Debian package of relayd: the three binaries (relayd, relayctl, rtpgen), the
# systemd unit, docs/relayd.example.toml as /etc/relayd/relayd.toml (a conffile) and the maintainer
# scripts (the relayd system user, the state directory). dpkg-deb only, no debhelper.
#
#   scripts/package-deb.sh [--no-build] [OUTDIR]    -> OUTDIR/relayd_VERSION_ARCH.deb (default target/debian)
#
# The version is relayd's in Cargo (the workspace version). Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
if [[ ${1:-} == --no-build ]]; then
  build=
  shift
fi
out=${1:-target/debian}
export CARGO_INCREMENTAL=0
if [[ -n $build ]]; then
  cargo build --release -p relayd -p relayctl -p bench --bin relayd --bin relayctl --bin rtpgen >&2
fi
# RELAYD_DEB_VERSION overrides the version (scripts/package-test.sh builds an "upgrade")
version=${RELAYD_DEB_VERSION:-}
[[ -n $version ]] || version=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "relayd"))')
arch=$(dpkg --print-architecture)
root=$(mktemp -d -t relayd-deb.XXXXXX)
trap 'rm -rf "$root"' EXIT
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/relayd" "$root/usr/share/doc/relayd"
for b in relayd relayctl rtpgen; do
  install -m 0755 "target/release/$b" "$root/usr/bin/$b"
  strip --strip-unneeded "$root/usr/bin/$b"
done
install -m 0644 packaging/relayd.service "$root/lib/systemd/system/relayd.service"
install -m 0644 docs/relayd.example.toml "$root/etc/relayd/relayd.toml"
for d in README.md docs/operations.md docs/configuration.md; do
  [[ -e $d ]] && install -m 0644 "$d" "$root/usr/share/doc/relayd/"
done
cat >"$root/usr/share/doc/relayd/copyright" <<'COPY'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: relayd
Files: *
License: MIT or Apache-2.0
COPY
echo /etc/relayd/relayd.toml >"$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control.in \
  >"$root/DEBIAN/control"
mkdir -p "$out"
deb="$out/relayd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
