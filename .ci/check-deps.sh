#!/usr/bin/env bash
# Dependency rules cargo-deny cannot express, checked on the resolved feature graph
# (`make lint` runs this):
#   - exactly one rustls crypto provider is built: aws-lc-rs, never ring as well;
#   - recon-api links no HTTP client (its money formatting comes from recon-money);
#   - actix-web is built without compression, cookies, websockets or HTTP/2.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
fail=0
say() { printf '[deps] %s\n' "$*" >&2; }

# `{p}` per line, no tree drawing: every package built for any target, tests included.
packages=$("$CARGO" tree --workspace --target all -e normal,build,dev --prefix none --format '{p}' |
  awk '{print $1}' | sort -u)

providers=$(grep -xE 'ring|aws-lc-rs' <<<"$packages" || true)
if [ "$providers" != aws-lc-rs ]; then
  say "rustls crypto providers built: ${providers:-none}; expected aws-lc-rs only."
  say "find what enables ring with: $CARGO tree -e features -i ring"
  fail=1
fi

api_http=$("$CARGO" tree -p recon-api -e normal --target all --prefix none --format '{p}' |
  awk '{print $1}' | grep -xE 'reqwest|hyper-rustls|helcim-client' | sort -u || true)
if [ -n "$api_http" ]; then
  say "recon-api links an HTTP client ($(echo $api_http)); see: $CARGO tree -p recon-api -i reqwest"
  fail=1
fi

actix_features=$("$CARGO" tree --workspace -e normal --prefix none --format '{p} {f}' |
  awk '$1 == "actix-web" && $NF != "(*)" {print $NF}' | sort -u)
if grep -qE 'compress|cookies|http2|ws' <<<"$actix_features"; then
  say "actix-web is built with features $actix_features; only macros is wanted"
  fail=1
fi

[ "$fail" = 0 ] && say "one crypto provider (aws-lc-rs); recon-api without an HTTP client; actix-web features: ${actix_features:-none}"
exit "$fail"
