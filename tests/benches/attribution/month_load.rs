//! A month of verdicts generated straight into Postgres, as the engine would have left
//! them: ledger rows in `card_transactions`, one verdict each in
//! `attribution_transactions`, gaps for the verdicts that are gaps (open, acknowledged,
//! resolved by a person or by evidence) and orphan evidence. Everything is derived
//! from the row number by `hashint8`, so two runs load the same mix.
//!
//! The attribution triggers are off while loading: no engine runs here, and a million
//! `attribution_dirty` rows would only measure the load.

use chrono::{DateTime, Utc};
use sqlx::{Connection, Executor, PgConnection};

/// What to load.
#[derive(Debug, Clone)]
pub struct Mix {
    pub accounts: i64,
    /// Ledger rows in the month under report.
    pub transactions: i64,
    /// Ledger rows spread over the month before, so the report has to pick its month.
    pub earlier: i64,
    pub zone: String,
}

/// Loads `mix` into the database at `url`: the month under report spans
/// `[start, end)`, the earlier rows `[earlier_start, start)`.
pub async fn load(
    url: &str,
    mix: &Mix,
    earlier_start: DateTime<Utc>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut db = PgConnection::connect(url).await?;
    db.execute("SET statement_timeout = 0").await?;
    db.execute(
        "ALTER TABLE card_transactions DISABLE TRIGGER card_transactions_attribution;
         ALTER TABLE attribution_evidence DISABLE TRIGGER attribution_evidence_attribution",
    )
    .await?;
    sqlx::query(
        "INSERT INTO accounts (account_id, display_name, revenue_share_bps)
         SELECT 'bench-' || lpad(a::text, 3, '0'), 'Bench merchant ' || a,
                CASE WHEN a % 4 = 0 THEN NULL ELSE 1500 + (a % 7) * 250 END
           FROM generate_series(0, $1 - 1) a",
    )
    .bind(mix.accounts)
    .execute(&mut db)
    .await?;
    ledger(&mut db, mix, 1, mix.transactions, start, end).await?;
    ledger(
        &mut db,
        mix,
        mix.transactions + 1,
        mix.earlier,
        earlier_start,
        start,
    )
    .await?;
    verdicts(&mut db, &mix.zone).await?;
    gaps(&mut db, &mix.zone).await?;
    orphans(&mut db, mix, start, end).await?;
    db.execute(
        "ALTER TABLE card_transactions ENABLE TRIGGER card_transactions_attribution;
         ALTER TABLE attribution_evidence ENABLE TRIGGER attribution_evidence_attribution",
    )
    .await?;
    // As autovacuum would have left them: statistics, and the visibility map.
    for table in [
        "card_transactions",
        "attribution_transactions",
        "attribution_gaps",
        "accounts",
    ] {
        db.execute(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .await?;
    }
    db.close().await?;
    Ok(())
}

/// `count` stored ledger rows with ids from `first`, times shuffled over `[start, end)`.
/// Per 100: 80 approved purchases, 5 approved captures, 5 declined purchases, 5
/// approved refunds, 2 preauths, 3 verifies. Accounts 0, 5, 10, … charge in USD,
/// 1, 6, 11, … in both, the others in CAD.
async fn ledger(
    db: &mut PgConnection,
    mix: &Mix,
    first: i64,
    count: i64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let step = (end - start).num_milliseconds() / count.max(1);
    sqlx::query(
        "INSERT INTO card_transactions
             (account_id, transaction_id, card_batch_id, created_at, status, type,
              amount_minor, currency, card_type, invoice_number, raw, fetched_at,
              reconciliation_status, first_seen_at, updated_at)
         SELECT 'bench-' || lpad(a::text, 3, '0'), i, i / 500, at,
                CASE WHEN r BETWEEN 85 AND 89 THEN 'DECLINED' ELSE 'APPROVED' END,
                CASE WHEN r < 80 OR r BETWEEN 85 AND 89 THEN 'purchase'
                     WHEN r < 85 THEN 'capture' WHEN r < 95 THEN 'refund'
                     WHEN r < 97 THEN 'preauth' ELSE 'verify' END,
                CASE WHEN r BETWEEN 90 AND 94 THEN 100 + h % 5000 ELSE 100 + h % 99900 END,
                CASE WHEN a % 5 = 0 OR (a % 5 = 1 AND h % 3 = 0) THEN 'USD' ELSE 'CAD' END,
                'VI', 'INV-' || i, '{}'::json, at + interval '4 seconds',
                'matched', at + interval '2 seconds', at + interval '4 seconds'
           FROM (SELECT i, i % $3 AS a,
                        abs(hashint8(i)::bigint) % 100 AS r,
                        abs(hashint8(i * 31)::bigint) AS h,
                        $4::timestamptz
                          + ((abs(hashint8(i * 7)::bigint) % $5) * $6) * interval '1 millisecond' AS at
                   FROM generate_series($1::bigint, $1 + $2 - 1) i) g",
    )
    .bind(first)
    .bind(count)
    .bind(mix.accounts)
    .bind(start)
    .bind(count)
    .bind(step)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// One verdict per ledger row (no evidence rows behind them: the report never reads
/// evidence). Of 1,000 revenue rows: 930 attributed (one in ten of
/// them by invoice, one in a hundred after a gap its evidence resolved), 20
/// `token_rejected`, 15 `token_missing`, 20 `unattributed`, 5 waived by a person, 10
/// still pending.
async fn verdicts(db: &mut PgConnection, zone: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO attribution_transactions
             (account_id, transaction_id, month, kind, amount_minor, currency, stored_at,
              verdict, gap_class, evidence_id, match_method, evaluated_at)
         SELECT account_id, transaction_id,
                date_trunc('month', created_at AT TIME ZONE $1)::date, kind,
                amount_minor, currency, fetched_at,
                CASE WHEN kind <> 'revenue' THEN 'none' WHEN v < 930 THEN 'attributed'
                     WHEN v < 985 THEN 'gap' WHEN v < 990 THEN 'waived' ELSE 'pending' END,
                CASE WHEN kind <> 'revenue' OR v < 930 OR v >= 990 THEN NULL
                     WHEN v < 950 THEN 'token_rejected' WHEN v < 965 THEN 'token_missing'
                     ELSE 'unattributed' END,
                NULL::bigint,
                CASE WHEN kind = 'revenue' AND v < 930 THEN
                     CASE WHEN v % 10 = 0 THEN 'invoice' ELSE 'transaction_id' END END,
                fetched_at + interval '1 second'
           FROM (SELECT *,
                        CASE WHEN status = 'APPROVED' AND type IN ('purchase', 'capture')
                             THEN 'revenue'
                             WHEN status = 'APPROVED' AND type IN ('refund', 'reverse')
                             THEN 'adjustment' ELSE 'none' END AS kind,
                        abs(hashint8(transaction_id + 7)::bigint) % 1000 AS v
                   FROM card_transactions) c",
    )
    .bind(zone)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// The gaps behind the `gap` and `waived` verdicts, and the gaps evidence resolved for
/// one attributed transaction in a hundred.
async fn gaps(db: &mut PgConnection, zone: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO attribution_gaps
             (account_id, transaction_id, evidence_id, class, amount_minor, currency,
              month, deadline, status, resolution, detected_at, updated_at)
         SELECT account_id, transaction_id, NULL,
                COALESCE(gap_class, 'unattributed'), amount_minor, currency, month,
                (month + interval '1 month')::timestamp AT TIME ZONE $1,
                CASE WHEN verdict = 'gap' AND transaction_id % 3 = 0 THEN 'acknowledged'
                     WHEN verdict = 'gap' THEN 'open' ELSE 'resolved' END,
                CASE WHEN verdict = 'waived' THEN 'person'
                     WHEN verdict = 'attributed' THEN 'evidence' END,
                stored_at + interval '20 seconds', evaluated_at
           FROM attribution_transactions
          WHERE verdict IN ('gap', 'waived')
             OR (verdict = 'attributed' AND abs(hashint8(transaction_id + 7)::bigint) % 1000 < 9)",
    )
    .bind(zone)
    .execute(&mut *db)
    .await?;
    Ok(())
}

/// Receipts claiming transactions the ledger does not have (five per account), each an
/// open `orphan_evidence` gap of the month.
async fn orphans(
    db: &mut PgConnection,
    mix: &Mix,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> anyhow::Result<()> {
    let count = mix.accounts * 5;
    let step = (end - start).num_milliseconds() / count.max(1);
    sqlx::query(
        "WITH evidence AS (
             INSERT INTO attribution_evidence
                 (dedupe_key, source, account_id, endpoint, partner_token_sent,
                  is_valid_partner_token, outcome, transaction_id, amount_minor, currency,
                  observed_at, recorded_at, receipt_id)
             SELECT 'bench-orphan-' || n, 'receipt', 'bench-' || lpad((n % $1)::text, 3, '0'),
                    'receipt', true, 1, 'reported', 900000000 + n, 1000 + n, 'CAD',
                    $2::timestamptz + (n * $3) * interval '1 millisecond',
                    $2::timestamptz + (n * $3) * interval '1 millisecond' + interval '1 second',
                    'orphan-' || n
               FROM generate_series(0, $4 - 1) n
             RETURNING id, account_id, transaction_id, amount_minor, currency, observed_at)
         INSERT INTO attribution_gaps
             (account_id, transaction_id, evidence_id, class, reason, amount_minor, currency,
              month, deadline, status, detected_at, updated_at)
         SELECT account_id, transaction_id, id, 'orphan_evidence', 'no_transaction',
                amount_minor, currency,
                date_trunc('month', observed_at AT TIME ZONE $5)::date,
                (date_trunc('month', observed_at AT TIME ZONE $5) + interval '1 month')
                    AT TIME ZONE $5,
                'open', observed_at + interval '10 minutes', observed_at + interval '10 minutes'
           FROM evidence",
    )
    .bind(mix.accounts)
    .bind(start)
    .bind(step)
    .bind(count)
    .bind(&mix.zone)
    .execute(&mut *db)
    .await?;
    Ok(())
}
