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
    Classification, Desired, OrphanVerdict, TokenEvidence, classify, orphan,
};
use recon_attribution::matching::{Match, Method, match_one};
use recon_attribution::{GapClass, Kind};
use sqlx::PgConnection;

use super::Engine;
use super::apply::{self, Subject, apply};
use super::load::{self, EvidenceRow, Stored};
use super::store::{self, VerdictRow};

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
    // Evidence matched to (or ambiguous between) these transactions by an invoice
    // they may no longer carry: found neither by their id nor by their new invoice.
    evidence_ids.extend(load::evidence_matched_to(conn, &seed_keys).await?);
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
        matches.insert(e.id, matched);
    }
    let pairs: Vec<_> = evidence.values().map(|e| (e, &matches[&e.id])).collect();
    store::matches(conn, &pairs, now).await?;

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
    // Pending (or vanished) transactions are judged once they are stored.
    let judged: Vec<TxKey> = affected
        .into_iter()
        .filter(|k| ledger.contains_key(k))
        .collect();
    let first_seen = load::first_seen(conn, &judged).await?;
    let matched = load::matched_evidence(conn, &judged).await?;
    let with_gaps = load::transactions_with_gaps(conn, &judged).await?;
    let mut verdicts = Vec::with_capacity(judged.len());
    for key in &judged {
        let stored_at = match first_seen.get(key).or(seeds.get(key)) {
            Some(at) => *at,
            None => load::earliest_mark(conn, key).await?.unwrap_or(now),
        };
        let input = Judged {
            stored: &ledger[key],
            stored_at,
            evidence: matched.get(key).map_or(&[][..], Vec::as_slice),
            may_have_gap: with_gaps.contains(key),
        };
        verdicts.push(judge_transaction(conn, engine, input, now).await?);
    }
    store::verdicts(conn, &verdicts, now).await?;

    let with_orphan_gaps = load::orphan_gaps(conn, &ids).await?;
    for e in evidence.values() {
        let may_have_gap = with_orphan_gaps.contains(&e.id);
        judge_orphan(conn, engine, e, &matches[&e.id], may_have_gap, now).await?;
    }
    Ok(BatchOutcome {
        marks: dirty.len(),
        transactions: verdicts.len(),
        evidence: evidence.len(),
    })
}

/// What judging one transaction needs.
struct Judged<'a> {
    stored: &'a Stored,
    stored_at: DateTime<Utc>,
    evidence: &'a [(TokenEvidence, Method)],
    may_have_gap: bool,
}

/// The verdict on one stored transaction, after applying its gap's lifecycle.
async fn judge_transaction(
    conn: &mut PgConnection,
    engine: &Engine,
    input: Judged<'_>,
    now: DateTime<Utc>,
) -> Result<VerdictRow, sqlx::Error> {
    let key = &input.stored.key;
    let month = engine.calendar.month_of(key.created_at);
    let mut row = VerdictRow {
        account_id: key.account_id.clone(),
        transaction_id: key.transaction_id,
        month: month.first_day(),
        kind: match input.stored.kind {
            Kind::Revenue => "revenue",
            Kind::Adjustment => "adjustment",
            Kind::None => "none",
        },
        amount_minor: key.amount_minor,
        currency: key.currency.clone(),
        stored_at: input.stored_at,
        verdict: "none",
        gap_class: None,
        evidence_id: None,
        match_method: None,
    };
    let subject = |evidence_id| Subject {
        account_id: Some(key.account_id.clone()),
        api_token_lookup: None,
        transaction_id: Some(key.transaction_id),
        evidence_id,
        candidates: None,
        amount_minor: Some(key.amount_minor),
        currency: Some(key.currency.clone()),
        month,
        deadline: engine.calendar.close_of(month),
        orphan: false,
    };
    if input.stored.kind != Kind::Revenue {
        if input.may_have_gap {
            apply::not_revenue(conn, &subject(None), now).await?;
        }
        return Ok(row);
    }
    let tokens: Vec<_> = input.evidence.iter().map(|(t, _)| *t).collect();
    let (desired, deciding) = match classify(&tokens, input.stored_at, now, engine.grace) {
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
    let verdict = apply(conn, &subject(deciding), desired, input.may_have_gap, now)
        .await?
        .verdict;
    row.verdict = verdict.as_str();
    row.gap_class = verdict.gap_class().map(GapClass::as_str);
    row.evidence_id = deciding;
    row.match_method = deciding.and_then(|id| {
        input
            .evidence
            .iter()
            .find(|(t, _)| t.id == id)
            .map(|(_, m)| m.as_str())
    });
    Ok(row)
}

/// Evidence that matched no single transaction: an orphan once its grace period
/// passes (ambiguous at once); an orphan that now matches is resolved.
async fn judge_orphan(
    conn: &mut PgConnection,
    engine: &Engine,
    e: &EvidenceRow,
    matched: &Match,
    may_have_gap: bool,
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
    if !may_have_gap && !matches!(desired, Desired::Gap { .. }) {
        return Ok(());
    }
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
    apply(conn, &subject, desired, may_have_gap, now).await?;
    Ok(())
}
