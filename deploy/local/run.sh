#!/usr/bin/env bash
# `make run`: the whole pipeline, locally, against the simulator:
#   recon-sim ──signed webhooks──▶ recon-receiver ──RabbitMQ──▶ recon-worker ──▶ Postgres ◀── recon-api
#                    ▲                                              │
#                    └──────────── Helcim API (simulated) ◀─────────┘
# Accounts go into Postgres (encrypted) with reconctl, as an operator would add them.
# Prints progress and a summary, then serves until Ctrl-C. RUN_ONCE=1 stops after the
# summary (scripts, CI). REAL_LIMITS=1 keeps Helcim's 100 calls/min per account (slow).
set -euo pipefail
cd "$(dirname "$0")/../.."

# The binaries `make build` made: in cargo's target directory, which CARGO_TARGET_DIR
# (or a .cargo/config.toml) may have moved away from ./target. Cargo says where.
if [ -z "${BIN:-}" ]; then
  target_dir=$("${CARGO:-cargo}" metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  BIN=$target_dir/debug
fi
for exe in reconctl recon-sim recon-receiver recon-worker recon-api; do
  [ -x "$BIN/$exe" ] || { printf '[run] %s is missing: build first (make build), or set BIN\n' "$BIN/$exe" >&2; exit 1; }
done
STATE=.local
SIM_ADDR=${SIM_ADDR:-127.0.0.1:8070}
RECEIVER_ADDR=${RECEIVER_ADDR:-127.0.0.1:8080}
WORKER_ADDR=${WORKER_ADDR:-127.0.0.1:8081}
API_ADDR=${API_ADDR:-127.0.0.1:8082}
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

limits=(--limit-in-flight 0 --limit-per-minute 0 --limit-per-hour 0)
worker_limits=unlimited
if [ "${REAL_LIMITS:-0}" = 1 ]; then limits=(); worker_limits=helcim; fi

say "starting recon-sim on $SIM_ADDR (log: $STATE/sim.log)"
SIM_ADDR=$SIM_ADDR "$BIN/recon-sim" --accounts-out "$STATE/sim-accounts.json" \
  --webhook-url "http://$RECEIVER_ADDR/webhooks/helcim/{account_id}" \
  --webhook-rate "${SIM_WEBHOOK_RATE:-200}" --hold-deliveries "${limits[@]}" >"$STATE/sim.log" 2>&1 &
pids+=($!)
wait_http "http://$SIM_ADDR/healthz" recon-sim "$STATE/sim.log"

# Register the simulated accounts: verifier tokens for the receiver, API tokens for
# the worker (again on later runs: "already exists" is fine).
python3 - "$STATE/sim-accounts.json" > "$STATE/sim-accounts.tsv" <<'PY'
import json, sys
for account in json.load(open(sys.argv[1])):
    print(account["accountId"], account["apiToken"], *account["verifierTokens"], sep="\t")
PY
while IFS=$'\t' read -r account api_token first rest; do
  VERIFIER=$first API_TOKEN=$api_token "$BIN/reconctl" accounts add "$account" \
    --verifier-token-env VERIFIER --api-token-env API_TOKEN 2>/dev/null ||
    API_TOKEN=$api_token "$BIN/reconctl" accounts set-tokens "$account" --api-token-env API_TOKEN >/dev/null
  for token in $rest; do
    VERIFIER=$token "$BIN/reconctl" accounts rotate-verifier "$account" --verifier-token-env VERIFIER >/dev/null 2>&1 || true
  done
done < "$STATE/sim-accounts.tsv"
RECON_PUBLIC_URL="http://$RECEIVER_ADDR" "$BIN/reconctl" accounts list

say "starting recon-receiver on $RECEIVER_ADDR, recon-worker on $WORKER_ADDR, recon-api on $API_ADDR (logs in $STATE/)"
RECEIVER_ADDR=$RECEIVER_ADDR "$BIN/recon-receiver" >"$STATE/receiver.log" 2>&1 &
pids+=($!)
WORKER_ADDR=$WORKER_ADDR HELCIM_API_BASE_URL="http://$SIM_ADDR/v2" HELCIM_LIMITS=$worker_limits \
  "$BIN/recon-worker" >"$STATE/worker.log" 2>&1 &
pids+=($!)
API_ADDR=$API_ADDR "$BIN/recon-api" >"$STATE/api.log" 2>&1 &
pids+=($!)
wait_http "http://$RECEIVER_ADDR/readyz" recon-receiver "$STATE/receiver.log"
wait_http "http://$WORKER_ADDR/readyz" recon-worker "$STATE/worker.log"
wait_http "http://$API_ADDR/readyz" recon-api "$STATE/api.log"

curl -fsS -X POST "http://$SIM_ADDR/sim/deliveries/start" >/dev/null
say "webhooks are flowing: simulator → receiver → RabbitMQ → worker → Postgres"
ledger() { psql "$DATABASE_URL" -Atc "$1" 2>/dev/null || echo "?"; }
while :; do
  stats=$(curl -fsS "http://$SIM_ADDR/sim/stats")
  delivered=$(echo "$stats" | json '"%d/%d" % (d["webhooks"]["delivered"], d["webhooks"]["planned"])')
  finished=$(echo "$stats" | json 'd["webhooks"]["finished"]')
  waiting=$(RUST_LOG=warn "$BIN/reconctl" queues | awk '!/\.dead/ {s += $2} END {print s + 0}')
  reconciled=$(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'")
  printf '\r[run] webhooks delivered %s, queued %s, transactions reconciled %s   ' "$delivered" "$waiting" "$reconciled" >&2
  [ "$finished" = True ] && [ "$waiting" = 0 ] && break
  sleep 1
done
printf '\n' >&2

key=$(RUST_LOG=warn "$BIN/reconctl" api-keys create --role finance | tail -n 1)
sample=$(ledger "SELECT account_id || '/transactions/' || transaction_id FROM card_transactions WHERE reconciliation_status = 'matched' ORDER BY transaction_id LIMIT 1")
cat >&2 <<MSG

  helcim-recon local pipeline
  ---------------------------
  transactions reconciled  $(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status = 'matched'") matched, $(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status = 'exception'") exceptions, $(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status = 'pending'") pending
  card batches             $(ledger "SELECT count(*) FROM card_batches")
  webhook deliveries       $(ledger "SELECT count(*) FROM webhook_deliveries") recorded ($(ledger "SELECT count(*) FROM webhook_deliveries WHERE attempts > 1") seen more than once)
  dead letters             $(RUST_LOG=warn "$BIN/reconctl" dlq list | sed -n "1{s/ from position 0//;p}")

  Query the ledger with the finance key just created:
    curl -H "Authorization: Bearer $key" \\
         http://$API_ADDR/v1/accounts/$sample

  simulator http://$SIM_ADDR (/sim/truth, /sim/stats) · receiver http://$RECEIVER_ADDR · worker http://$WORKER_ADDR/metrics
  database  ${DATABASE_URL#*@}
  logs      $STATE/{sim,receiver,worker,api}.log
MSG

if [ "${RUN_ONCE:-0}" = 1 ]; then
  curl -fsS -H "Authorization: Bearer $key" "http://$API_ADDR/v1/accounts/$sample" >/dev/null ||
    { say "the API did not answer the sample query"; exit 1; }
  say "RUN_ONCE=1: the API answered; stopping"
  exit 0
fi
say "serving until Ctrl-C"
wait "${pids[@]}"
