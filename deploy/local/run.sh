#!/usr/bin/env bash
# `make run`: the local stack against the simulator. Today that is the simulator
# itself (the receiver and worker join as they are built); it serves until Ctrl-C.
# RUN_ONCE=1 checks the stack answers and exits, for scripts and CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-target/debug}
STATE=.local
SIM_ADDR=${SIM_ADDR:-127.0.0.1:8070}
mkdir -p "$STATE"

say() { printf '[run] %s\n' "$*" >&2; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# A local key for secrets at rest (used once the database holds secrets).
if [ ! -s "$STATE/master.key" ]; then
  head -c 32 /dev/urandom | base64 > "$STATE/master.key"
  chmod 600 "$STATE/master.key"
fi

say "starting recon-sim on $SIM_ADDR (logs: $STATE/sim.log)"
SIM_ADDR=$SIM_ADDR LOG_FORMAT=${LOG_FORMAT:-pretty} \
  "$BIN/recon-sim" --accounts-out "$STATE/sim-accounts.json" >"$STATE/sim.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://$SIM_ADDR/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$SIM_ADDR/healthz" >/dev/null || { say "recon-sim did not start; see $STATE/sim.log"; exit 1; }

token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["apiToken"])' "$STATE/sim-accounts.json")
account=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["accountId"])' "$STATE/sim-accounts.json")
connected=$(curl -fsS -H "api-token: $token" "http://$SIM_ADDR/v2/connection-test")
count=$(curl -fsS -H "api-token: $token" "http://$SIM_ADDR/v2/card-transactions?limit=1000" |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
stats=$(curl -fsS "http://$SIM_ADDR/sim/stats")

cat >&2 <<MSG

  helcim-recon local stack
  ------------------------
  simulated Helcim API  http://$SIM_ADDR/v2   ($connected)
  account $account: $count card transactions
  simulator totals: $stats

  Try it (tokens are in $STATE/sim-accounts.json; they are the simulator's own):
    TOKEN=\$(python3 -c 'import json; print(json.load(open("$STATE/sim-accounts.json"))[0]["apiToken"])')
    curl -H "api-token: \$TOKEN" "http://$SIM_ADDR/v2/card-transactions?dateFrom=2026-11-01&dateTo=2026-11-01"
    curl http://$SIM_ADDR/sim/truth?account=$account     # ground truth
    curl http://$SIM_ADDR/sim/stats

MSG

if [ "${RUN_ONCE:-0}" = 1 ]; then
  say "RUN_ONCE=1: the stack answered; stopping"
  exit 0
fi
say "serving until Ctrl-C"
wait "${pids[0]}"
