//! Attribution evidence (migration 0008): one row per payment request, written by the
//! gateway (in batches, possibly replayed from its spool) and by the receipts endpoint.
//!
//! Writing is idempotent by `dedupe_key`: the same request recorded twice is one row.
//! A later record replaces an earlier one only when the earlier had no answer from
//! Helcim and the later has one (a retry that got through after a timeout); otherwise
//! the first answer stands, as Helcim itself replays the first answer to a retried
//! idempotency key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, QueryBuilder, Row};

/// Who recorded the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Gateway,
    Receipt,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gateway => "gateway",
            Source::Receipt => "receipt",
        }
    }
}

/// What became of the request at Helcim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Helcim answered (the status is in `response_status`).
    Answered,
    /// No answer: the connection to Helcim failed.
    Unreachable,
    /// No answer in time.
    Timeout,
    /// A receipt: the integration reports what it saw.
    Reported,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Unreachable => "unreachable",
            Outcome::Timeout => "timeout",
            Outcome::Reported => "reported",
        }
    }
}

/// One piece of evidence. Holds no secret and no card data: tokens appear only as
/// keyed fingerprints, and the request body only through the fields below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub dedupe_key: String,
    pub source: Source,
    pub account_id: Option<String>,
    pub api_token_lookup: Option<String>,
    pub endpoint: String,
    pub idempotency_key: Option<String>,
    pub partner_token_sent: bool,
    pub partner_token_added: bool,
    /// Helcim's `is-valid-partner-token`: `Some(1)`, `Some(0)`, or `None` when absent.
    pub is_valid_partner_token: Option<i16>,
    pub outcome: Outcome,
    pub response_status: Option<i16>,
    pub transaction_id: Option<i64>,
    pub invoice_number: Option<String>,
    pub customer_code: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub observed_at: DateTime<Utc>,
    pub receipt_id: Option<String>,
    pub submitted_by: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// New rows.
    pub inserted: u64,
    /// Rows that had no answer from Helcim and now have one.
    pub answered_later: u64,
}

/// Rows per INSERT: well under Postgres's 65,535 bind parameters (19 per row).
const ROWS_PER_STATEMENT: usize = 1_000;

#[derive(Debug, Clone)]
pub struct EvidenceStore {
    pool: PgPool,
}

impl EvidenceStore {
    pub fn new(pool: PgPool) -> Self {
        EvidenceStore { pool }
    }

    /// Writes `evidence` in one transaction: all of it or none. Safe to repeat.
    pub async fn record(&self, evidence: &[Evidence]) -> Result<Recorded, sqlx::Error> {
        let mut rows = one_per_key(evidence);
        // Rows locked in key order, so two batches sharing requests in different orders
        // (the live writer and a spool replay) wait for each other instead of
        // deadlocking, which would fail one of them.
        rows.sort_unstable_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
        let mut recorded = Recorded::default();
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO attribution_evidence (dedupe_key, source, account_id, api_token_lookup,
                     endpoint, idempotency_key, partner_token_sent, partner_token_added,
                     is_valid_partner_token, outcome, response_status, transaction_id,
                     invoice_number, customer_code, amount_minor, currency, observed_at,
                     receipt_id, submitted_by) ",
            );
            insert.push_values(chunk, |mut row, e| {
                row.push_bind(&e.dedupe_key)
                    .push_bind(e.source.as_str())
                    .push_bind(&e.account_id)
                    .push_bind(&e.api_token_lookup)
                    .push_bind(&e.endpoint)
                    .push_bind(&e.idempotency_key)
                    .push_bind(e.partner_token_sent)
                    .push_bind(e.partner_token_added)
                    .push_bind(e.is_valid_partner_token)
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.response_status)
                    .push_bind(e.transaction_id)
                    .push_bind(&e.invoice_number)
                    .push_bind(&e.customer_code)
                    .push_bind(e.amount_minor)
                    .push_bind(&e.currency)
                    .push_bind(e.observed_at)
                    .push_bind(&e.receipt_id)
                    .push_bind(&e.submitted_by);
            });
            insert.push(
                " ON CONFLICT (dedupe_key) DO UPDATE SET
                     account_id = coalesce(attribution_evidence.account_id, EXCLUDED.account_id),
                     partner_token_sent = EXCLUDED.partner_token_sent,
                     partner_token_added = EXCLUDED.partner_token_added,
                     is_valid_partner_token = EXCLUDED.is_valid_partner_token,
                     outcome = EXCLUDED.outcome,
                     response_status = EXCLUDED.response_status,
                     transaction_id = EXCLUDED.transaction_id,
                     observed_at = EXCLUDED.observed_at
                 WHERE attribution_evidence.outcome IN ('unreachable', 'timeout')
                   AND EXCLUDED.outcome = 'answered'
                 RETURNING (xmax = 0) AS inserted",
            );
            for row in insert.build().fetch_all(&mut *tx).await? {
                if row.try_get::<bool, _>("inserted")? {
                    recorded.inserted += 1;
                } else {
                    recorded.answered_later += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(recorded)
    }
}

/// One record per dedupe key, the answered one winning (Postgres refuses to update
/// the same row twice in one statement, and this is the rule the upsert applies).
fn one_per_key(evidence: &[Evidence]) -> Vec<&Evidence> {
    let mut kept: Vec<&Evidence> = Vec::with_capacity(evidence.len());
    let mut index = std::collections::HashMap::with_capacity(evidence.len());
    for e in evidence {
        match index.get(e.dedupe_key.as_str()) {
            None => {
                index.insert(e.dedupe_key.as_str(), kept.len());
                kept.push(e);
            }
            Some(&at) => {
                let earlier: &Evidence = kept[at];
                if earlier.outcome != Outcome::Answered && e.outcome == Outcome::Answered {
                    kept[at] = e;
                }
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(key: &str, outcome: Outcome) -> Evidence {
        Evidence {
            dedupe_key: key.into(),
            source: Source::Gateway,
            account_id: Some("m1".into()),
            api_token_lookup: Some("ab".repeat(16)),
            endpoint: "payment/purchase".into(),
            idempotency_key: Some("k".repeat(25)),
            partner_token_sent: false,
            partner_token_added: true,
            is_valid_partner_token: (outcome == Outcome::Answered).then_some(1),
            outcome,
            response_status: (outcome == Outcome::Answered).then_some(200),
            transaction_id: None,
            invoice_number: None,
            customer_code: None,
            amount_minor: Some(1_000),
            currency: Some("CAD".into()),
            observed_at: Utc::now(),
            receipt_id: None,
            submitted_by: None,
        }
    }

    #[test]
    fn within_a_batch_one_record_per_key_survives_and_an_answer_beats_a_timeout() {
        let batch = vec![
            sample("a", Outcome::Timeout),
            sample("b", Outcome::Answered),
            sample("a", Outcome::Answered),
            sample("b", Outcome::Unreachable),
        ];
        let kept = one_per_key(&batch);
        assert_eq!(kept.len(), 2);
        assert_eq!(
            (kept[0].dedupe_key.as_str(), kept[0].outcome),
            ("a", Outcome::Answered)
        );
        assert_eq!(
            (kept[1].dedupe_key.as_str(), kept[1].outcome),
            ("b", Outcome::Answered)
        );
    }

    #[test]
    fn evidence_survives_a_round_trip_through_json_as_the_spool_keeps_it() {
        let e = sample("x", Outcome::Answered);
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Evidence>(&line).unwrap(), e);
    }
}
