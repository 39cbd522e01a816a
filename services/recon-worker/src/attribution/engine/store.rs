//! The engine's set-wise writes: a batch's matches and verdicts, one statement each
//! (a batch of 500 marks would otherwise cost a thousand round trips).

use chrono::{DateTime, NaiveDate, Utc};
use recon_attribution::matching::Match;
use sqlx::PgConnection;

use super::load::EvidenceRow;

/// Upserts the match of every piece of evidence in the batch.
pub async fn matches(
    conn: &mut PgConnection,
    evidence: &[(&EvidenceRow, &Match)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if evidence.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::new();
    let mut accounts = Vec::new();
    let mut states = Vec::new();
    let mut transactions = Vec::new();
    let mut methods = Vec::new();
    // Arrays of unequal length do not fit a 2-D array: each list travels as its text.
    let mut candidates = Vec::new();
    let mut approved = Vec::new();
    let mut recorded = Vec::new();
    for (e, matched) in evidence {
        ids.push(e.id);
        accounts.push(e.account_id.clone());
        states.push(matched.state());
        transactions.push(matched.transaction_id());
        methods.push(match matched {
            Match::Matched { method, .. } => Some(method.as_str()),
            _ => None,
        });
        candidates.push(match matched {
            Match::Ambiguous(list) => Some(format!(
                "{{{}}}",
                list.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            _ => None,
        });
        approved.push(e.approved_payment());
        recorded.push(e.recorded_at);
    }
    sqlx::query(
        "INSERT INTO attribution_matches (evidence_id, account_id, state, transaction_id, method,
             candidates, approved_payment, recorded_at, evaluated_at)
         SELECT id, account, state, tx, method, candidates::bigint[], approved, recorded, $9
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                       $6::text[], $7::boolean[], $8::timestamptz[])
                AS m(id, account, state, tx, method, candidates, approved, recorded)
         ON CONFLICT (evidence_id) DO UPDATE SET account_id = EXCLUDED.account_id,
             state = EXCLUDED.state, transaction_id = EXCLUDED.transaction_id,
             method = EXCLUDED.method, candidates = EXCLUDED.candidates,
             approved_payment = EXCLUDED.approved_payment, recorded_at = EXCLUDED.recorded_at,
             evaluated_at = EXCLUDED.evaluated_at",
    )
    .bind(ids)
    .bind(accounts)
    .bind(states)
    .bind(transactions)
    .bind(methods)
    .bind(candidates)
    .bind(approved)
    .bind(recorded)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// One transaction's row in `attribution_transactions`.
#[derive(Debug, Clone)]
pub struct VerdictRow {
    pub account_id: String,
    pub transaction_id: i64,
    pub month: NaiveDate,
    pub kind: &'static str,
    pub amount_minor: i64,
    pub currency: String,
    pub stored_at: DateTime<Utc>,
    pub verdict: &'static str,
    pub gap_class: Option<&'static str>,
    pub evidence_id: Option<i64>,
    pub match_method: Option<&'static str>,
}

/// Upserts the verdicts; `stored_at` keeps its first value (the grace period runs
/// from the first time the transaction was seen stored).
pub async fn verdicts(
    conn: &mut PgConnection,
    rows: &[VerdictRow],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: &dyn Fn(&VerdictRow) -> Option<String>| -> Vec<Option<String>> {
        rows.iter().map(f).collect()
    };
    sqlx::query(
        "INSERT INTO attribution_transactions (account_id, transaction_id, month, kind,
             amount_minor, currency, stored_at, verdict, gap_class, evidence_id, match_method,
             evaluated_at)
         SELECT *, $12::timestamptz FROM unnest($1::text[], $2::bigint[], $3::date[], $4::text[],
             $5::bigint[], $6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::bigint[],
             $11::text[])
         ON CONFLICT (account_id, transaction_id) DO UPDATE SET month = EXCLUDED.month,
             kind = EXCLUDED.kind, amount_minor = EXCLUDED.amount_minor,
             currency = EXCLUDED.currency, verdict = EXCLUDED.verdict,
             gap_class = EXCLUDED.gap_class, evidence_id = EXCLUDED.evidence_id,
             match_method = EXCLUDED.match_method, evaluated_at = EXCLUDED.evaluated_at",
    )
    .bind(
        rows.iter()
            .map(|r| r.account_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.transaction_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.month).collect::<Vec<_>>())
    .bind(column(&|r| Some(r.kind.to_string())))
    .bind(rows.iter().map(|r| r.amount_minor).collect::<Vec<_>>())
    .bind(column(&|r| Some(r.currency.clone())))
    .bind(rows.iter().map(|r| r.stored_at).collect::<Vec<_>>())
    .bind(column(&|r| Some(r.verdict.to_string())))
    .bind(column(&|r| r.gap_class.map(str::to_string)))
    .bind(rows.iter().map(|r| r.evidence_id).collect::<Vec<_>>())
    .bind(column(&|r| r.match_method.map(str::to_string)))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
