#!/usr/bin/env bash
# Checks that vendor/candle-core is candle-core 0.11.1 as published on crates.io plus
# vendor/candle-core-0.11.1-backprop.patch, and nothing else. Needs curl (or the crate in
# cargo's download cache), sha256sum, tar and patch.
# Exit status: 0 when it matches, 1 when it does not, 2 when the published crate could
# not be fetched.
set -euo pipefail
cd "$(dirname "$0")"
version=0.11.1
# The checksum crates.io's index gives for candle-core 0.11.1 (as Cargo.lock recorded it).
sha=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
crate="$tmp/candle-core-$version.crate"
cached=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/candle-core-$version.crate 2>/dev/null | head -1 || true)
if [ -n "$cached" ]; then
  cp "$cached" "$crate"
else
  if ! curl -sSfL --max-time 60 -o "$crate" \
    "https://static.crates.io/crates/candle-core/candle-core-$version.crate"; then
    echo "could not fetch candle-core $version from crates.io"
    exit 2
  fi
fi
echo "$sha  $crate" | sha256sum --check --quiet
tar -xzf "$crate" -C "$tmp"
(cd "$tmp/candle-core-$version" && patch --quiet -p1 < "$OLDPWD/candle-core-$version-backprop.patch")
diff -r "$tmp/candle-core-$version" candle-core
echo "vendor/candle-core = crates.io candle-core $version + candle-core-$version-backprop.patch"
