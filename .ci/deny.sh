#!/usr/bin/env bash
# `make deny`: cargo-deny with deny.toml. Licences, bans and sources are always checked
# (they need only the lock file). Advisories need the RustSec database, which is fetched
# from GitHub: when it cannot be fetched, that is said loudly and the advisory check is
# skipped, unless DENY_REQUIRE_ADVISORIES=1, which makes it a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
say() { printf '[deny] %s\n' "$*" >&2; }

if ! "$CARGO" deny --version >/dev/null 2>&1; then
  say "cargo-deny is not installed: installing it (cargo install --locked cargo-deny; a few minutes, once)"
  "$CARGO" install --locked cargo-deny
fi
"$CARGO" deny --version

"$CARGO" deny --log-level warn check --hide-inclusion-graph bans licenses sources

if "$CARGO" deny --log-level error fetch db; then
  "$CARGO" deny --log-level warn check --disable-fetch advisories
else
  say "========================================================================"
  say "ADVISORIES NOT CHECKED: the RustSec advisory database could not be fetched"
  say "(no route to GitHub from here). Licences, bans and sources were checked."
  say "Run 'make deny' where GitHub is reachable to check advisories."
  say "========================================================================"
  if [ "${DENY_REQUIRE_ADVISORIES:-0}" = 1 ]; then exit 1; fi
fi
