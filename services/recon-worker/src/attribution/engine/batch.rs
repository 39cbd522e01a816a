//! One batch of dirty marks, processed in one database transaction: the marks are
//! deleted, and every match, verdict, gap, event and alert they lead to is written,
//! or none of it is (a crash or an error puts the marks back for another try).
//!
//! Replicas take different marks (`SKIP LOCKED`), but two marks for one account can
//! still land in two replicas' batches at once. Each batch therefore takes a
//! transaction-scoped advisory lock per account it touches, all at once and in
//! sorted order (so two batches never deadlock), and reads only after holding them:
//! the later batch judges what the earlier one committed, never a stale snapshot.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use recon_attribution::classify::{
    Classification, Desired, OrphanVerdict, Verdict, classify, orphan,
};
use recon_attribution::matching::{Match, match_one};
use recon_attribution::{GapClass, Kind};
use sqlx::PgConnection;

use super::Engine;
use super::apply::{Subject, apply};
use super::load::{self, EvidenceRow, Stored};

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Dirty marks taken.
    pub marks: usize,
    /// Transactions judged.
    pub transactions: usize,
    /// Evidence matched.
    pub evidence: usize,
}

type TxKey = (String, i64);

pub async fn run(
    conn: &mut PgConnection,
    engine: &Engine,
    now: DateTime<Utc>,
) -> Result<BatchOutcome, sqlx::Error> {
    let dirty = load::take_dirty(conn, engine.batch_size).await?;
    if dirty.is_empty() {
        return Ok(BatchOutcome::default());
    }
    let accounts: BTreeSet<String> = dirty
        .iter()
        .map(|d| d.account_id.clone().unwrap_or_default())
        .collect();
    super::lock_accounts(conn, &accounts).await?;

    // The first mark of a transaction is when it reached the ledger.
    let mut seeds: BTreeMap<TxKey, DateTime<Utc>> = BTreeMap::new();
    let mut evidence_ids = BTreeSet::new();
    for mark in &dirty {
        if let (Some(account), Some(id)) = (&mark.account_id, mark.transaction_id) {
            let first = seeds.entry((account.clone(), id)).or_insert(mark.marked_at);
            *first = (*first).min(mark.marked_at);
        }
        if let Some(id) = mark.evidence_id {
            evidence_ids.insert(id);
        }
    }
    let seed_keys: Vec<TxKey> = seeds.keys().cloned().collect();
    let seed_rows = load::ledger_by_id(conn, &seed_keys).await?;
    let dirty_evidence =
        load::evidence_by_id(conn, &evidence_ids.iter().copied().collect::<Vec<_>>()).await?;

    // The group: every piece of evidence that could be about these transactions,
    // and every transaction that evidence could be about.
    let mut claims: BTreeSet<TxKey> = seeds.keys().cloned().collect();
    let mut invoices: BTreeSet<(String, String)> = BTreeSet::new();
    for row in &seed_rows {
        if let Some(invoice) = &row.invoice_number {
            invoices.insert((row.account_id.clone(), invoice.clone()));
        }
    }
    for e in &dirty_evidence {
        if let (Some(account), Some(id)) = (&e.account_id, e.transaction_id) {
            claims.insert((account.clone(), id));
        }
        invoices.extend(e.invoice_key());
    }
    let claims: Vec<TxKey> = claims.into_iter().collect();
    let invoices: Vec<(String, String)> = invoices.into_iter().collect();
    let mut evidence: BTreeMap<i64, EvidenceRow> = BTreeMap::new();
    for e in dirty_evidence
        .into_iter()
        .chain(load::evidence_claiming(conn, &claims).await?)
        .chain(load::evidence_by_invoice(conn, &invoices).await?)
    {
        evidence.insert(e.id, e);
    }
    let evidence_claims: Vec<TxKey> = evidence
        .values()
        .filter_map(|e| Some((e.account_id.clone()?, e.transaction_id?)))
        .collect();
    let evidence_invoices: Vec<(String, String)> = evidence
        .values()
        .filter_map(EvidenceRow::invoice_key)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut ledger: BTreeMap<TxKey, Stored> = BTreeMap::new();
    for row in seed_rows
        .into_iter()
        .chain(load::ledger_by_id(conn, &evidence_claims).await?)
        .chain(load::ledger_by_invoice(conn, &evidence_invoices).await?)
    {
        match row.stored() {
            Some(stored) => {
                ledger.insert((row.account_id.clone(), row.transaction_id), stored);
            }
            None => tracing::warn!(
                account_id = %row.account_id,
                transaction_id = row.transaction_id,
                "a stored ledger transaction lacks its time, type, status, amount or currency; attribution cannot judge it"
            ),
        }
    }

    // Match, remembering what each piece of evidence matched before.
    let keys: Vec<_> = ledger.values().map(|s| s.key.clone()).collect();
    let ids: Vec<i64> = evidence.keys().copied().collect();
    let mut affected: BTreeSet<TxKey> = load::previous_matches(conn, &ids)
        .await?
        .into_iter()
        .collect();
    affected.extend(seeds.keys().cloned());
    let mut matches = BTreeMap::new();
    for e in evidence.values() {
        let matched = match_one(&e.key(), &keys, engine.match_window);
        if let (Some(account), Some(id)) = (&e.account_id, matched.transaction_id()) {
            affected.insert((account.clone(), id));
        }
        store_match(conn, e, &matched, now).await?;
        matches.insert(e.id, matched);
    }

    let mut outcome = BatchOutcome {
        marks: dirty.len(),
        evidence: evidence.len(),
        ..BatchOutcome::default()
    };
    let missing: Vec<TxKey> = affected
        .iter()
        .filter(|k| !ledger.contains_key(*k))
        .cloned()
        .collect();
    for row in load::ledger_by_id(conn, &missing).await? {
        if let Some(stored) = row.stored() {
            ledger.insert((row.account_id.clone(), row.transaction_id), stored);
        }
    }
    for key in &affected {
        // Pending (or vanished) transactions are judged once they are stored.
        let Some(stored) = ledger.get(key) else {
            continue;
        };
        judge_transaction(conn, engine, stored, seeds.get(key).copied(), now).await?;
        outcome.transactions += 1;
    }
    for e in evidence.values() {
        judge_orphan(conn, engine, e, &matches[&e.id], now).await?;
    }
    Ok(outcome)
}

async fn store_match(
    conn: &mut PgConnection,
    e: &EvidenceRow,
    matched: &Match,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (transaction_id, method, candidates) = match matched {
        Match::Matched {
            transaction_id,
            method,
        } => (Some(*transaction_id), Some(method.as_str()), None),
        Match::Ambiguous(ids) => (None, None, Some(ids.clone())),
        Match::Unmatched | Match::Unregistered => (None, None, None),
    };
    sqlx::query(
        "INSERT INTO attribution_matches (evidence_id, account_id, state, transaction_id, method,
             candidates, approved_payment, recorded_at, evaluated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (evidence_id) DO UPDATE SET account_id = EXCLUDED.account_id,
             state = EXCLUDED.state, transaction_id = EXCLUDED.transaction_id,
             method = EXCLUDED.method, candidates = EXCLUDED.candidates,
             approved_payment = EXCLUDED.approved_payment, recorded_at = EXCLUDED.recorded_at,
             evaluated_at = EXCLUDED.evaluated_at",
    )
    .bind(e.id)
    .bind(&e.account_id)
    .bind(matched.state())
    .bind(transaction_id)
    .bind(method)
    .bind(candidates)
    .bind(e.approved_payment())
    .bind(e.recorded_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The verdict on one stored transaction, and its gap.
async fn judge_transaction(
    conn: &mut PgConnection,
    engine: &Engine,
    stored: &Stored,
    marked_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let key = &stored.key;
    let month = engine.calendar.month_of(key.created_at);
    let first_seen: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT stored_at FROM attribution_transactions WHERE account_id = $1 AND transaction_id = $2",
    )
    .bind(&key.account_id)
    .bind(key.transaction_id)
    .fetch_optional(&mut *conn)
    .await?;
    let stored_at = match first_seen.or(marked_at) {
        Some(at) => at,
        // Reached through its evidence while its own mark sits in another batch:
        // that mark still says when it was stored.
        None => sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "SELECT min(marked_at) FROM attribution_dirty WHERE account_id = $1 AND transaction_id = $2",
        )
        .bind(&key.account_id)
        .bind(key.transaction_id)
        .fetch_one(&mut *conn)
        .await?
        .unwrap_or(now),
    };
    let (verdict, evidence_id, method) = if stored.kind == Kind::Revenue {
        let matched = load::matched_evidence(conn, &key.account_id, key.transaction_id).await?;
        let tokens: Vec<_> = matched.iter().map(|(t, _)| *t).collect();
        let classification = classify(&tokens, stored_at, now, engine.grace);
        let (desired, deciding) = match classification {
            Classification::Attributed { evidence_id } => {
                (Desired::Cleared { evidence_id }, Some(evidence_id))
            }
            Classification::Gap { class, evidence_id } => (
                Desired::Gap {
                    class,
                    reason: None,
                },
                evidence_id,
            ),
            Classification::Pending { .. } => (Desired::Undecided, None),
        };
        let subject = Subject {
            account_id: Some(key.account_id.clone()),
            api_token_lookup: None,
            transaction_id: Some(key.transaction_id),
            evidence_id: deciding,
            candidates: None,
            amount_minor: Some(key.amount_minor),
            currency: Some(key.currency.clone()),
            month,
            deadline: engine.calendar.close_of(month),
            orphan: false,
        };
        let applied = apply(conn, &subject, desired, now).await?;
        let method = deciding.and_then(|id| {
            matched
                .iter()
                .find(|(t, _)| t.id == id)
                .map(|(_, m)| m.as_str())
        });
        (Some(applied.verdict), deciding, method)
    } else {
        (None, None, None)
    };
    let kind = match stored.kind {
        Kind::Revenue => "revenue",
        Kind::Adjustment => "adjustment",
        Kind::None => "none",
    };
    sqlx::query(
        "INSERT INTO attribution_transactions (account_id, transaction_id, month, kind,
             amount_minor, currency, stored_at, verdict, gap_class, evidence_id, match_method,
             evaluated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (account_id, transaction_id) DO UPDATE SET month = EXCLUDED.month,
             kind = EXCLUDED.kind, amount_minor = EXCLUDED.amount_minor,
             currency = EXCLUDED.currency, verdict = EXCLUDED.verdict,
             gap_class = EXCLUDED.gap_class, evidence_id = EXCLUDED.evidence_id,
             match_method = EXCLUDED.match_method, evaluated_at = EXCLUDED.evaluated_at",
    )
    .bind(&key.account_id)
    .bind(key.transaction_id)
    .bind(month.first_day())
    .bind(kind)
    .bind(key.amount_minor)
    .bind(&key.currency)
    .bind(stored_at)
    .bind(verdict.map_or("none", Verdict::as_str))
    .bind(verdict.and_then(Verdict::gap_class).map(GapClass::as_str))
    .bind(evidence_id)
    .bind(method)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Evidence that matched no single transaction: an orphan once its grace period
/// passes (ambiguous at once); an orphan that now matches is resolved.
async fn judge_orphan(
    conn: &mut PgConnection,
    engine: &Engine,
    e: &EvidenceRow,
    matched: &Match,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let desired = match orphan(
        matched,
        e.approved_payment(),
        e.recorded_at,
        now,
        engine.grace,
    ) {
        OrphanVerdict::Orphan(reason) => Desired::Gap {
            class: GapClass::OrphanEvidence,
            reason: Some(reason),
        },
        OrphanVerdict::No if matched.transaction_id().is_some() => {
            Desired::Cleared { evidence_id: e.id }
        }
        OrphanVerdict::No | OrphanVerdict::Pending { .. } => Desired::Undecided,
    };
    let month = engine.calendar.month_of(e.observed_at);
    let subject = Subject {
        account_id: e.account_id.clone(),
        api_token_lookup: e
            .account_id
            .is_none()
            .then(|| e.api_token_lookup.clone())
            .flatten(),
        transaction_id: matched.transaction_id().or(e.transaction_id),
        evidence_id: Some(e.id),
        candidates: match matched {
            Match::Ambiguous(ids) => Some(ids.clone()),
            _ => None,
        },
        amount_minor: e.amount_minor,
        currency: e.currency.as_ref().map(|c| c.trim().to_string()),
        month,
        deadline: engine.calendar.close_of(month),
        orphan: true,
    };
    apply(conn, &subject, desired, now).await?;
    Ok(())
}
