#!/usr/bin/env bash
# `make run`: the whole pipeline, locally, against the simulator:
#   recon-sim ──signed webhooks──▶ recon-receiver ──RabbitMQ──▶ recon-worker ──▶ Postgres ◀── recon-api
#                    ▲                                              │                ▲
#                    └──────────── Helcim API (simulated) ◀─────────┘                │ evidence
#                    ▲                                                               │
#   payments ────────┴──────────────────── recon-gateway (adds the partner token) ───┘
# After the simulated history is reconciled, an attribution mix makes payments every
# way a partner's merchants make them (deploy/local/attribution-mix.py).
# Accounts go into Postgres (encrypted) with reconctl, as an operator would add them.
# Prints progress and a summary (the attribution summary last: gaps by class, money at
# risk, time to the close), then serves until Ctrl-C. RUN_ONCE=1 stops after the
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
for exe in reconctl recon-sim recon-receiver recon-worker recon-api recon-gateway; do
  [ -x "$BIN/$exe" ] || { printf '[run] %s is missing: build first (make build), or set BIN\n' "$BIN/$exe" >&2; exit 1; }
done
STATE=.local
SIM_ADDR=${SIM_ADDR:-127.0.0.1:8070}
RECEIVER_ADDR=${RECEIVER_ADDR:-127.0.0.1:8080}
WORKER_ADDR=${WORKER_ADDR:-127.0.0.1:8081}
API_ADDR=${API_ADDR:-127.0.0.1:8082}
GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:8083}
# Helcim's published test partner token: the simulator answers is-valid-partner-token: 1
# for it (and 0 for any other).
PARTNER_TOKEN=f29104118c0d65
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
  --webhook-rate "${SIM_WEBHOOK_RATE:-200}" --hold-deliveries "${limits[@]}" \
  --batch-close-every "${SIM_BATCH_CLOSE_EVERY:-120}" >"$STATE/sim.log" 2>&1 &
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
# A revenue share rate (25 bps of the volume, an example) so the attribution summary
# shows the share at risk, not only the volume.
while IFS=$'\t' read -r account _; do
  RUST_LOG=warn "$BIN/reconctl" accounts set-share --account "$account" --bps "${SHARE_BPS:-25}" >/dev/null
done < "$STATE/sim-accounts.tsv"
RECON_PUBLIC_URL="http://$RECEIVER_ADDR" "$BIN/reconctl" accounts list

say "starting recon-receiver on $RECEIVER_ADDR, recon-worker on $WORKER_ADDR, recon-api on $API_ADDR (logs in $STATE/)"
RECEIVER_ADDR=$RECEIVER_ADDR "$BIN/recon-receiver" >"$STATE/receiver.log" 2>&1 &
pids+=($!)
# A short grace period (production: 600 s) so the mix's unreported direct payments
# become `unattributed` gaps before the summary; a sweep every 2 s finds them.
ATTRIBUTION_GRACE=${RECON_ATTRIBUTION_GRACE:-20}
WORKER_ADDR=$WORKER_ADDR HELCIM_API_BASE_URL="http://$SIM_ADDR/v2" HELCIM_LIMITS=$worker_limits \
  RECON_ATTRIBUTION_GRACE=$ATTRIBUTION_GRACE RECON_ATTRIBUTION_SWEEP_INTERVAL=${RECON_ATTRIBUTION_SWEEP_INTERVAL:-2} \
  RECON_SWEEP_INTERVAL=${RECON_SWEEP_INTERVAL:-5} RECON_MISSED_WEBHOOK_GRACE=${RECON_MISSED_WEBHOOK_GRACE:-10} \
  "$BIN/recon-worker" >"$STATE/worker.log" 2>&1 &
pids+=($!)
API_ADDR=$API_ADDR "$BIN/recon-api" >"$STATE/api.log" 2>&1 &
pids+=($!)
say "starting recon-gateway on $GATEWAY_ADDR (log: $STATE/gateway.log)"
GATEWAY_ADDR=$GATEWAY_ADDR HELCIM_API_BASE_URL="http://$SIM_ADDR/v2" HELCIM_PARTNER_TOKEN=$PARTNER_TOKEN \
  GATEWAY_SPOOL_DIR="$STATE/gateway-spool" "$BIN/recon-gateway" >"$STATE/gateway.log" 2>&1 &
pids+=($!)
wait_http "http://$RECEIVER_ADDR/readyz" recon-receiver "$STATE/receiver.log"
wait_http "http://$WORKER_ADDR/readyz" recon-worker "$STATE/worker.log"
wait_http "http://$API_ADDR/readyz" recon-api "$STATE/api.log"
wait_http "http://$GATEWAY_ADDR/readyz" recon-gateway "$STATE/gateway.log"

curl -fsS -X POST "http://$SIM_ADDR/sim/deliveries/start" >/dev/null
say "webhooks are flowing: simulator → receiver → RabbitMQ → worker → Postgres"
ledger() { psql "$DATABASE_URL" -Atc "$1" 2>/dev/null || echo "?"; }
# Waits until the simulator has nothing left to deliver and the queues are empty.
drain() {
  while :; do
    stats=$(curl -fsS "http://$SIM_ADDR/sim/stats")
    delivered=$(echo "$stats" | json '"%d/%d" % (d["webhooks"]["delivered"], d["webhooks"]["planned"] + d["webhooks"]["live"])')
    pending=$(echo "$stats" | json 'd["webhooks"]["pending"]')
    finished=$(echo "$stats" | json 'd["webhooks"]["finished"]')
    waiting=$(RUST_LOG=warn "$BIN/reconctl" queues | awk '!/\.dead/ {s += $2} END {print s + 0}')
    reconciled=$(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending'")
    printf '\r[run] webhooks delivered %s, queued %s, transactions reconciled %s   ' "$delivered" "$waiting" "$reconciled" >&2
    [ "$finished" = True ] && [ "$pending" = 0 ] && [ "$waiting" = 0 ] && break
    sleep 1
  done
  printf '\n' >&2
}
drain

# The attribution mix: payments through the gateway, direct with receipts, direct
# without any, a Smart Terminal, a HelcimPay.js checkout and Helcim's own tools; then
# a referred merchant registering (a connectedAccount webhook).
say "attribution mix: payments every way a partner's merchants make them"
admin_key=$(RUST_LOG=warn "$BIN/reconctl" api-keys create --role admin | tail -n 1)
mix_started=$(ledger "SELECT now()")
python3 deploy/local/attribution-mix.py "$SIM_ADDR" "$GATEWAY_ADDR" "$API_ADDR" "$admin_key" \
  "$STATE/sim-accounts.json" "$PARTNER_TOKEN"
referrer=$(head -n 1 "$STATE/sim-accounts.tsv" | cut -f 1)
connected=$(curl -fsS -X POST -H 'content-type: application/json' -d '{}' \
  "http://$SIM_ADDR/sim/accounts/$referrer/connected-accounts" | json 'd["accountId"]')
say "a merchant referred by $referrer registered at Helcim (simulator id $connected); waiting for its webhook"
sleep 2 # the terminal's outcome and the connectedAccount event are sent asynchronously
drain

# The engine: every stored transaction and every piece of evidence has its verdict,
# and the grace period of the last ones has run out (so nothing is still pending).
say "waiting for the attribution engine (grace period ${ATTRIBUTION_GRACE}s)"
engine_deadline=$((SECONDS + ATTRIBUTION_GRACE + 90))
while :; do
  behind=$(ledger "SELECT (SELECT count(*) FROM card_transactions WHERE reconciliation_status <> 'pending')
                        - (SELECT count(*) FROM attribution_transactions)
                        + (SELECT count(*) FROM attribution_evidence)
                        - (SELECT count(*) FROM attribution_matches)
                        + (SELECT count(*) FROM attribution_dirty)
                        + (SELECT count(*) FROM attribution_transactions WHERE verdict = 'pending')")
  printf '\r[run] attribution: %s verdicts still to come or in their grace period   ' "$behind" >&2
  [ "$behind" = 0 ] && break
  if [ $SECONDS -ge $engine_deadline ]; then
    printf '\n' >&2
    say "the attribution engine did not settle; see $STATE/worker.log"
    exit 1
  fi
  sleep 1
done
printf '\n' >&2

# Reconciliation: today's traffic, three discrepancies Helcim could cause, then the
# simulator's clock moves past the batches' close; the sweeps find what no webhook
# said and verify every closed batch.
say "reconciliation: traffic, a hidden transaction, a duplicate and a tampered batch; batches close"
while IFS=$'\t' read -r account _; do
  curl -fsS -X POST -H 'content-type: application/json' -d '{"count": 60}' \
    "http://$SIM_ADDR/sim/accounts/$account/traffic" >/dev/null
done < "$STATE/sim-accounts.tsv"
for kind in batch_stats_mismatch hidden_transaction duplicate; do
  curl -fsS -X POST -H 'content-type: application/json' \
    -d "{\"kind\": \"$kind\", \"accountId\": \"$referrer\"}" "http://$SIM_ADDR/sim/inject" >/dev/null
done
drain
curl -fsS -X PUT -H 'content-type: application/json' \
  -d "{\"advanceSeconds\": $((${SIM_BATCH_CLOSE_EVERY:-120} + 1))}" "http://$SIM_ADDR/sim/clock" >/dev/null
recon_deadline=$((SECONDS + 90))
while :; do
  behind=$(ledger "SELECT (SELECT count(*) FROM card_batches b WHERE NOT b.closed)
                        + (SELECT count(*) FROM card_batches b WHERE NOT EXISTS (SELECT 1 FROM batch_settlements s
                             WHERE s.account_id = b.account_id AND s.card_batch_id = b.card_batch_id AND s.verdict <> 'open'))
                        + greatest(0, 3 - (SELECT count(*) FROM reconciliation_exceptions))")
  printf '\r[run] reconciliation: %s batches still to close or verify   ' "$behind" >&2
  [ "$behind" = 0 ] && break
  if [ $SECONDS -ge $recon_deadline ]; then
    printf '\n' >&2
    say "the sweeps did not verify every batch in time; see $STATE/worker.log"
    break
  fi
  sleep 1
done
printf '\n' >&2

key=$(RUST_LOG=warn "$BIN/reconctl" api-keys create --role finance | tail -n 1)
sample=$(ledger "SELECT account_id || '/transactions/' || transaction_id FROM card_transactions WHERE reconciliation_status = 'matched' ORDER BY transaction_id LIMIT 1")
# Gaps by class, money at risk and time to the close, for the month now is in.
attribution_summary() {
  RUST_LOG=warn "$BIN/reconctl" attribution summary 2>&1 ||
    echo "attribution summary: reconctl could not read it (above)"
}

cat >&2 <<MSG

  helcim-recon local pipeline
  ---------------------------
  transactions reconciled  $(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status = 'matched'") matched, $(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status = 'exception'") exceptions, $(ledger "SELECT count(*) FROM card_transactions WHERE reconciliation_status = 'pending'") pending
  card batches             $(ledger "SELECT count(*) FROM card_batches")
  webhook deliveries       $(ledger "SELECT count(*) FROM webhook_deliveries") recorded ($(ledger "SELECT count(*) FROM webhook_deliveries WHERE attempts > 1") seen more than once)
  dead letters             $(RUST_LOG=warn "$BIN/reconctl" dlq list | sed -n "1{s/ from position 0//;p}")

  attribution evidence the mix left (docs/gateway.md, docs/api.md)
$(ledger "SELECT format('    %-62s %s', kind, n) FROM (
            SELECT CASE
                     WHEN source = 'receipt' THEN 'receipts (direct to Helcim)'
                     WHEN partner_token_added THEN 'gateway, partner token added'
                     WHEN partner_token_sent THEN 'gateway, client''s token kept'
                     ELSE 'gateway, no partner token' END
                   || ', is-valid-partner-token ' || coalesce(is_valid_partner_token::text, 'absent') AS kind,
                   count(*) AS n
            FROM attribution_evidence WHERE observed_at >= '$mix_started' GROUP BY 1 ORDER BY 1) k")
    by endpoint: $(ledger "SELECT string_agg(endpoint || ' ' || n, ', ' ORDER BY endpoint) FROM (SELECT endpoint, count(*) n FROM attribution_evidence WHERE observed_at >= '$mix_started' GROUP BY 1) e")
    ledger transactions with no evidence at all: $(ledger "SELECT count(*) FROM card_transactions t WHERE NOT EXISTS (SELECT 1 FROM attribution_evidence e WHERE e.account_id = t.account_id AND (e.transaction_id = t.transaction_id OR e.invoice_number = t.invoice_number))") (the simulated history, direct payments nobody reported, Helcim's own tools)
  connected accounts       $(RUST_LOG=warn "$BIN/reconctl" accounts list | awk -F '\t' '$6 != "-" && NR > 1 && /^connected/ {printf "%s (referred by %s) ", $1, $6}')

  settlement verdicts      $(ledger "SELECT coalesce(string_agg(verdict || ' ' || n, ', ' ORDER BY verdict), 'none yet') FROM (SELECT verdict, count(*) n FROM batch_settlements GROUP BY 1) v")
  exceptions               $(ledger "SELECT coalesce(string_agg(class || ' ' || n, ', ' ORDER BY class), 'none') FROM (SELECT class, count(*) n FROM reconciliation_exceptions WHERE status <> 'resolved' GROUP BY 1) e")  (reconctl exceptions list)
  journal                  $(ledger "SELECT count(*) FROM journal_entries") entries; trial balance by account (reconctl journal balances --account ...):
$(ledger "SELECT format('    %-24s %s %s', ledger_account, currency, to_char(sum(amount_minor) / 100.0, 'FM999999990.00')) FROM journal_lines GROUP BY ledger_account, currency ORDER BY currency, ledger_account")

$(attribution_summary | sed 's/^/  /')

  Query the ledger with the finance key just created:
    curl -H "Authorization: Bearer $key" \\
         http://$API_ADDR/v1/accounts/$sample

  simulator http://$SIM_ADDR (/sim/truth, /sim/stats) · receiver http://$RECEIVER_ADDR · worker http://$WORKER_ADDR/metrics
  gateway   http://$GATEWAY_ADDR/v2/... (point an integration here instead of Helcim)
  database  ${DATABASE_URL#*@}
  logs      $STATE/{sim,receiver,worker,api,gateway}.log
MSG

if [ "${RUN_ONCE:-0}" = 1 ]; then
  curl -fsS -H "Authorization: Bearer $key" "http://$API_ADDR/v1/accounts/$sample" >/dev/null ||
    { say "the API did not answer the sample query"; exit 1; }
  gaps=$(ledger "SELECT count(*) FROM attribution_gaps WHERE status IN ('open', 'acknowledged')")
  [ "$gaps" != "?" ] && [ "$gaps" -gt 0 ] ||
    { say "the attribution mix left no open gap (its direct payments should be unattributed)"; exit 1; }
  say "RUN_ONCE=1: the API answered; stopping"
  exit 0
fi
say "serving until Ctrl-C"
wait "${pids[@]}"
