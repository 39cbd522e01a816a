//! What a recorded transaction shows, apart from the database: each cause as the
//! exception to raise, with its dedupe key (docs/reconciliation.md, Exceptions), a
//! one-line summary with decimal amounts, and evidence. Evidence holds ids, amounts,
//! statuses and the masked card number the ledger stores; never the card token.

use chrono::{DateTime, Utc};
use recon_money::{Currency, format_minor_units};
use recon_reconcile::ExceptionClass;
use recon_reconcile::movement::{is_known_kind, is_known_status};
use serde_json::json;

use super::NewException;
use crate::reconciliation::StoredFacts;

/// Two approved same-card payments this close together look like one made twice
/// (fixed for now: no setting changes it).
pub const DUPLICATE_WINDOW_SECONDS: u64 = 120;

/// Why a `missed_webhook` clears when its webhook comes after all.
pub const LATE_WEBHOOK_NOTE: &str = "the webhook arrived late";

/// The transaction as stored after the write (what Helcim's newest answer says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Current {
    pub transaction_id: u64,
    pub status: String,
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    pub card_batch_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub card_number_masked: Option<String>,
    /// The currency the ledger holds for the transaction's batch.
    pub batch_currency: Option<String>,
}

/// The other side of a suspected duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Twin {
    pub transaction_id: u64,
    pub created_at: DateTime<Utc>,
}

/// `12.00 CAD`: exact, in the currency's minor digits.
pub(crate) fn money(minor: i64, currency: &str) -> String {
    let digits = currency.parse::<Currency>().map_or(2, |c| c.minor_digits());
    format!("{} {currency}", format_minor_units(minor, digits))
}

fn or_none<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// A key part made of Helcim's text: short, so a strange answer cannot make a huge key.
fn part(text: &str) -> String {
    text.chars().take(64).collect()
}

fn exception(
    account_id: &str,
    class: ExceptionClass,
    now: &Current,
    dedupe_key: String,
    summary: String,
    evidence: serde_json::Value,
) -> NewException {
    NewException {
        account_id: account_id.to_string(),
        class,
        transaction_id: Some(now.transaction_id),
        card_batch_id: now.card_batch_id.map(|b| b as u64),
        dedupe_key,
        summary,
        evidence,
        amount_minor: Some(now.amount_minor),
        currency: Some(now.currency.clone()),
    }
}

/// What changed at Helcim since `previous` (an answer stored earlier, not a pending
/// row): amount, status or type, batch. Currency is [`currency_mismatch`]'s.
pub(crate) fn changes(
    account_id: &str,
    previous: &StoredFacts,
    now: &Current,
) -> Vec<NewException> {
    let id = now.transaction_id;
    let mut found = Vec::new();
    if let Some(old) = previous.amount_minor.filter(|old| *old != now.amount_minor) {
        let old_currency = previous.currency.as_deref().unwrap_or(&now.currency);
        found.push(exception(
            account_id,
            ExceptionClass::AmountChanged,
            now,
            format!("amount_changed:tx:{id}:{old}->{}", now.amount_minor),
            format!(
                "transaction {id}: amount changed at Helcim from {} to {}",
                money(old, old_currency),
                money(now.amount_minor, &now.currency)
            ),
            json!({
                "transactionId": id,
                "cardBatchId": now.card_batch_id,
                "previous": {"amountMinor": old, "currency": old_currency,
                             "fetchedAt": previous.fetched_at},
                "current": {"amountMinor": now.amount_minor, "currency": now.currency},
            }),
        ));
    }
    let old_status = previous.status.as_deref().unwrap_or("none");
    let old_kind = previous.kind.as_deref().unwrap_or("none");
    if old_status != now.status || old_kind != now.kind {
        found.push(exception(
            account_id,
            ExceptionClass::StatusChanged,
            now,
            format!(
                "status_changed:tx:{id}:{}/{}->{}/{}",
                part(old_status),
                part(old_kind),
                part(&now.status),
                part(&now.kind)
            ),
            format!(
                "transaction {id}: changed at Helcim from {old_status} {old_kind} to {} {} ({})",
                now.status,
                now.kind,
                money(now.amount_minor, &now.currency)
            ),
            json!({
                "transactionId": id,
                "previous": {"status": previous.status, "type": previous.kind,
                             "fetchedAt": previous.fetched_at},
                "current": {"status": now.status, "type": now.kind},
            }),
        ));
    }
    if previous.card_batch_id != now.card_batch_id {
        let (old, new) = (or_none(previous.card_batch_id), or_none(now.card_batch_id));
        found.push(exception(
            account_id,
            ExceptionClass::BatchChanged,
            now,
            format!("batch_changed:tx:{id}:{old}->{new}"),
            format!(
                "transaction {id} ({}) moved at Helcim from card batch {old} to card batch {new}",
                money(now.amount_minor, &now.currency)
            ),
            json!({
                "transactionId": id,
                "previous": {"cardBatchId": previous.card_batch_id,
                             "fetchedAt": previous.fetched_at},
                "current": {"cardBatchId": now.card_batch_id},
            }),
        ));
    }
    found
}

/// The transaction's currency changed since `previous` (an answer stored earlier),
/// or differs from its batch's.
pub(crate) fn currency_mismatch(
    account_id: &str,
    previous: Option<&StoredFacts>,
    now: &Current,
) -> Option<NewException> {
    let id = now.transaction_id;
    let was = previous
        .and_then(|p| p.currency.as_deref())
        .filter(|was| *was != now.currency);
    let batch = now
        .batch_currency
        .as_deref()
        .filter(|batch| *batch != now.currency);
    if was.is_none() && batch.is_none() {
        return None;
    }
    let mut why = Vec::new();
    if let Some(was) = was {
        why.push(format!(
            "currency changed at Helcim from {was} to {}",
            now.currency
        ));
    }
    if let Some(batch) = batch {
        why.push(format!(
            "it is in {} but its card batch {} is in {batch}",
            now.currency,
            or_none(now.card_batch_id)
        ));
    }
    Some(exception(
        account_id,
        ExceptionClass::CurrencyMismatch,
        now,
        format!("currency_mismatch:tx:{id}:{}", now.currency),
        format!(
            "transaction {id} ({}): {}",
            money(now.amount_minor, &now.currency),
            why.join("; ")
        ),
        json!({
            "transactionId": id,
            "currency": now.currency,
            "previousCurrency": was,
            "cardBatchId": now.card_batch_id,
            "batchCurrency": now.batch_currency,
        }),
    ))
}

/// A status or type this version does not know: the journal does not post it.
pub(crate) fn unknown_status(account_id: &str, now: &Current) -> Option<NewException> {
    if is_known_status(&now.status) && is_known_kind(&now.kind) {
        return None;
    }
    let id = now.transaction_id;
    Some(exception(
        account_id,
        ExceptionClass::UnknownStatus,
        now,
        format!(
            "unknown_status:tx:{id}:{}/{}",
            part(&now.status),
            part(&now.kind)
        ),
        format!(
            "transaction {id} ({}): Helcim reports status {:?} and type {:?}, which this \
             version does not know; it is not posted to the journal",
            money(now.amount_minor, &now.currency),
            now.status,
            now.kind
        ),
        json!({
            "transactionId": id,
            "status": now.status,
            "type": now.kind,
            "known": {"status": is_known_status(&now.status), "type": is_known_kind(&now.kind)},
            "amountMinor": now.amount_minor,
            "currency": now.currency,
            "cardBatchId": now.card_batch_id,
        }),
    ))
}

/// `now` and `twin` (same account, type, card, amount, currency, both approved, close
/// in time): one exception keyed on the later of the two, naming the earlier.
pub(crate) fn duplicate_suspect(account_id: &str, now: &Current, twin: &Twin) -> NewException {
    let this = (now.created_at, now.transaction_id);
    let other = (twin.created_at, twin.transaction_id);
    let ((later_at, later), (earlier_at, earlier)) = if this > other {
        (this, other)
    } else {
        (other, this)
    };
    let apart = (later_at - earlier_at).num_seconds();
    let card = now
        .card_number_masked
        .as_deref()
        .unwrap_or("(no card number)");
    NewException {
        account_id: account_id.to_string(),
        class: ExceptionClass::DuplicateSuspect,
        transaction_id: Some(later),
        card_batch_id: (later == now.transaction_id)
            .then_some(now.card_batch_id)
            .flatten()
            .map(|b| b as u64),
        dedupe_key: format!("duplicate_suspect:tx:{later}"),
        summary: format!(
            "transaction {later} may charge card {card} a second time: {} of {}, {apart} s \
             after transaction {earlier}",
            now.kind,
            money(now.amount_minor, &now.currency)
        ),
        evidence: json!({
            "transactionId": later,
            "earlierTransactionId": earlier,
            "createdAt": later_at,
            "earlierCreatedAt": earlier_at,
            "secondsApart": apart,
            "type": now.kind,
            "amountMinor": now.amount_minor,
            "currency": now.currency,
            "cardNumber": now.card_number_masked,
        }),
        amount_minor: Some(now.amount_minor),
        currency: Some(now.currency.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + seconds, 0).unwrap()
    }

    fn current() -> Current {
        Current {
            transaction_id: 7,
            status: "APPROVED".into(),
            kind: "purchase".into(),
            amount_minor: 1500,
            currency: "CAD".into(),
            card_batch_id: Some(3),
            created_at: at(0),
            card_number_masked: Some("4111********1111".into()),
            batch_currency: Some("CAD".into()),
        }
    }

    fn stored(now: &Current) -> StoredFacts {
        StoredFacts {
            reconciliation_status: "matched".into(),
            status: Some(now.status.clone()),
            kind: Some(now.kind.clone()),
            amount_minor: Some(now.amount_minor),
            currency: Some(now.currency.clone()),
            card_batch_id: now.card_batch_id,
            fetched_at: Some(at(-60)),
            discovered_by: "webhook".into(),
        }
    }

    fn keys(found: &[NewException]) -> Vec<&str> {
        found.iter().map(|e| e.dedupe_key.as_str()).collect()
    }

    #[test]
    fn amounts_read_as_decimals_in_their_currency() {
        assert_eq!(money(1200, "CAD"), "12.00 CAD");
        assert_eq!(money(-5, "USD"), "-0.05 USD");
    }

    #[test]
    fn an_unchanged_row_shows_nothing() {
        let now = current();
        assert!(changes("a", &stored(&now), &now).is_empty());
        assert!(currency_mismatch("a", Some(&stored(&now)), &now).is_none());
        assert!(unknown_status("a", &now).is_none());
    }

    #[test]
    fn each_change_has_its_own_key_naming_old_and_new() {
        let now = current();
        let mut was = stored(&now);
        was.amount_minor = Some(1200);
        was.status = Some("DECLINED".into());
        was.card_batch_id = None;
        let found = changes("a", &was, &now);
        assert_eq!(
            keys(&found),
            [
                "amount_changed:tx:7:1200->1500",
                "status_changed:tx:7:DECLINED/purchase->APPROVED/purchase",
                "batch_changed:tx:7:none->3",
            ]
        );
        assert_eq!(
            found[0].summary,
            "transaction 7: amount changed at Helcim from 12.00 CAD to 15.00 CAD"
        );
        assert_eq!(found[0].evidence["previous"]["amountMinor"], 1200);
    }

    #[test]
    fn a_currency_differing_from_its_batch_or_changing_is_one_key() {
        let mut now = current();
        now.currency = "USD".into();
        let batch_only = currency_mismatch("a", None, &now).unwrap();
        let mut was = stored(&current());
        was.currency = Some("CAD".into());
        let both = currency_mismatch("a", Some(&was), &now).unwrap();
        assert_eq!(batch_only.dedupe_key, "currency_mismatch:tx:7:USD");
        assert_eq!(both.dedupe_key, batch_only.dedupe_key);
        assert!(both.summary.contains("from CAD to USD"), "{}", both.summary);
        assert!(
            both.summary.contains("batch 3 is in CAD"),
            "{}",
            both.summary
        );
    }

    #[test]
    fn a_duplicate_is_keyed_on_the_later_whichever_is_recorded_second() {
        let now = current();
        let later_twin = Twin {
            transaction_id: 5,
            created_at: at(30),
        };
        let earlier_twin = Twin {
            transaction_id: 9,
            created_at: at(-30),
        };
        let a = duplicate_suspect("a", &now, &later_twin);
        assert_eq!(a.dedupe_key, "duplicate_suspect:tx:5");
        assert_eq!(a.evidence["earlierTransactionId"], 7);
        let b = duplicate_suspect("a", &now, &earlier_twin);
        assert_eq!(b.dedupe_key, "duplicate_suspect:tx:7");
        assert_eq!(b.evidence["earlierTransactionId"], 9);
        assert_eq!(b.evidence["secondsApart"], 30);
        assert!(!b.evidence.to_string().contains("token"));
    }

    #[test]
    fn an_unknown_status_or_type_is_raised_with_both_in_the_key() {
        let mut now = current();
        now.status = "HELD".into();
        assert_eq!(
            unknown_status("a", &now).unwrap().dedupe_key,
            "unknown_status:tx:7:HELD/purchase"
        );
        now.status = "APPROVED".into();
        now.kind = "chargeback".into();
        assert!(unknown_status("a", &now).is_some());
    }
}
