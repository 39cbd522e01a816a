#!/usr/bin/env bash
# `make run`: the local pipeline against the simulator:
#   recon-sim ──signed webhooks──▶ recon-receiver ──confirmed──▶ RabbitMQ
# Accounts go into Postgres (encrypted) with reconctl, as an operator would add them.
# It prints progress and a summary, then serves until Ctrl-C. RUN_ONCE=1 stops after
# the summary (for scripts and CI).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-target/debug}
STATE=.local
SIM_ADDR=${SIM_ADDR:-127.0.0.1:8070}
RECEIVER_ADDR=${RECEIVER_ADDR:-127.0.0.1:8080}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export AMQP_PREFIX=${AMQP_PREFIX:-helcim-recon-local}
export LOG_FORMAT=${LOG_FORMAT:-pretty}
mkdir -p "$STATE"

say() { printf '[run] %s\n' "$*" >&2; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_http() { # url name log
  for _ in $(seq 1 150); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  say "$2 did not come up; see $3"
  exit 1
}

# The local key that encrypts secrets at rest (production keeps it in a secret store).
if [ ! -s "$STATE/master.key" ]; then
  "$BIN/reconctl" keys generate > "$STATE/master.key"
  chmod 600 "$STATE/master.key"
fi
RECON_MASTER_KEY=$(cat "$STATE/master.key")
export RECON_MASTER_KEY
# One local database per master key: a checkout with a new key (a fresh clone, say)
# gets its own, rather than rows it cannot decrypt.
key_id=$(sha256sum "$STATE/master.key" | cut -c1-12)
export DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/helcim_recon_local_$key_id}

"$BIN/reconctl" migrate

say "starting recon-sim on $SIM_ADDR (log: $STATE/sim.log)"
SIM_ADDR=$SIM_ADDR "$BIN/recon-sim" --accounts-out "$STATE/sim-accounts.json" \
  --webhook-url "http://$RECEIVER_ADDR/webhooks/helcim/{account_id}" \
  --webhook-rate "${SIM_WEBHOOK_RATE:-100}" --hold-deliveries >"$STATE/sim.log" 2>&1 &
pids+=($!)
wait_http "http://$SIM_ADDR/healthz" recon-sim "$STATE/sim.log"

# Register the simulated accounts and their verifier tokens (again on later runs:
# "already exists" is fine).
python3 - "$STATE/sim-accounts.json" > "$STATE/sim-accounts.tsv" <<'PY'
import json, sys
for account in json.load(open(sys.argv[1])):
    print(account["accountId"], *account["verifierTokens"], sep="\t")
PY
while IFS=$'\t' read -r account first rest; do
  VERIFIER=$first "$BIN/reconctl" accounts add "$account" --verifier-token-env VERIFIER 2>/dev/null ||
    say "account $account is already registered"
  for token in $rest; do
    VERIFIER=$token "$BIN/reconctl" accounts rotate-verifier "$account" --verifier-token-env VERIFIER >/dev/null 2>&1 || true
  done
done < "$STATE/sim-accounts.tsv"
"$BIN/reconctl" accounts list

say "starting recon-receiver on $RECEIVER_ADDR (log: $STATE/receiver.log)"
RECEIVER_ADDR=$RECEIVER_ADDR "$BIN/recon-receiver" >"$STATE/receiver.log" 2>&1 &
pids+=($!)
wait_http "http://$RECEIVER_ADDR/readyz" recon-receiver "$STATE/receiver.log"

curl -fsS -X POST "http://$SIM_ADDR/sim/deliveries/start" >/dev/null
say "webhooks are flowing: simulator → receiver → RabbitMQ"
while :; do
  stats=$(curl -fsS "http://$SIM_ADDR/sim/stats")
  line=$(echo "$stats" | json '"delivered %d/%d, failed attempts %d" % (d["webhooks"]["delivered"], d["webhooks"]["planned"], d["webhooks"]["failedAttempts"])')
  printf '\r[run] %s   ' "$line" >&2
  [ "$(echo "$stats" | json 'd["webhooks"]["finished"]')" = True ] && break
  sleep 1
done
printf '\n' >&2

accepted=$(curl -fsS "http://$RECEIVER_ADDR/metrics" |
  awk '/^receiver_requests_total/ && /outcome="accepted"/ {s += $NF} END {print s + 0}')
cat >&2 <<MSG

  helcim-recon local pipeline
  ---------------------------
  simulator          http://$SIM_ADDR   (Helcim API at /v2, ground truth at /sim/truth)
  receiver           http://$RECEIVER_ADDR/webhooks/helcim/<account>   (/metrics, /readyz)
  webhooks queued    $accepted (confirmed by RabbitMQ before the 2xx)
  queues (prefix $AMQP_PREFIX):
$(RUST_LOG=warn "$BIN/reconctl" queues | sed 's/^/    /')

  Until the worker lands, queued events wait in $AMQP_PREFIX.work.
  Logs: $STATE/sim.log, $STATE/receiver.log. More: README.md, "Operations".
MSG

if [ "${RUN_ONCE:-0}" = 1 ]; then
  say "RUN_ONCE=1: stopping"
  exit 0
fi
say "serving until Ctrl-C"
wait "${pids[@]}"
