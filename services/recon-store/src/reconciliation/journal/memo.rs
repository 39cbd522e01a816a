//! Entry memos: what happened, in words a finance reader follows.

use chrono::{DateTime, SecondsFormat, Utc};
use recon_reconcile::journal::{EntryKind, entry_amount};
use recon_reconcile::movement::Movement;

use super::store::ActiveEntry;

/// `12.34 CAD`, `-0.05 USD`: two minor digits, as both Helcim currencies have.
pub(super) fn money(amount_minor: i64, currency: &str) -> String {
    let sign = if amount_minor < 0 { "-" } else { "" };
    let units = amount_minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", units / 100, units % 100)
}

/// The memo of a transaction's entry, e.g. "Sale: approved purchase 1001 of 12.34 CAD".
pub(super) fn transaction(
    movement: Movement,
    kind: &str,
    transaction_id: u64,
    amount_minor: i64,
    currency: &str,
) -> String {
    let amount = money(amount_minor, currency);
    match movement {
        Movement::Sale => format!("Sale: approved {kind} {transaction_id} of {amount}"),
        Movement::Refund => format!("Refund: approved refund {transaction_id} of {amount}"),
        Movement::SaleReversed => format!(
            "Sale reversed: approved reverse {transaction_id} of {amount} voids a purchase or capture"
        ),
        Movement::RefundReversed => {
            format!("Refund reversed: approved reverse {transaction_id} of {amount} voids a refund")
        }
        Movement::None => format!("Transaction {transaction_id} moves no money"),
    }
}

/// Why a transaction's active entry no longer holds: what its row says now.
pub(super) fn transaction_now(
    transaction_id: u64,
    movement: Movement,
    status: &str,
    kind: &str,
    amount_minor: i64,
    currency: &str,
    card_batch_id: Option<u64>,
) -> String {
    let batch = card_batch_id.map_or_else(|| "no batch".to_string(), |b| format!("batch {b}"));
    match movement {
        Movement::None => format!(
            "transaction {transaction_id} now moves no money ({status} {kind}, {})",
            money(amount_minor, currency)
        ),
        movement => format!(
            "transaction {transaction_id} now reads {} of {} in {batch}",
            movement.as_str().replace('_', " "),
            money(amount_minor, currency)
        ),
    }
}

/// The memo of a batch's settlement entry.
pub(super) fn settlement(
    card_batch_id: u64,
    net_minor: i64,
    currency: &str,
    closed_at: DateTime<Utc>,
) -> String {
    format!(
        "Settlement: batch {card_batch_id} closed at {}; Helcim's net of {} moves from card clearing to settlement receivable",
        closed_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        money(net_minor, currency)
    )
}

/// Why a batch's active settlement no longer holds.
pub(super) fn settlement_now(card_batch_id: u64, net_minor: i64, currency: &str) -> String {
    format!(
        "Helcim now reports a net of {} for batch {card_batch_id}",
        money(net_minor, currency)
    )
}

/// The memo of a correction: which entry it reverses, what that entry said, and why.
pub(super) fn correction(entry: &ActiveEntry, why: &str) -> String {
    let what = match (EntryKind::parse(&entry.kind), entry_amount(&entry.lines)) {
        (Some(kind), Some((amount, currency))) => {
            format!(
                "{} of {}",
                kind.as_str().replace('_', " "),
                money(amount, currency)
            )
        }
        _ => entry.kind.clone(),
    };
    format!(
        "Correction: reverses entry {} ({what}) because {why}",
        entry.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_a_person_writes_it() {
        assert_eq!(money(1234, "CAD"), "12.34 CAD");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(-1200, "USD"), "-12.00 USD");
        assert_eq!(money(i64::MIN, "CAD"), "-92233720368547758.08 CAD");
    }

    #[test]
    fn memos_say_what_happened() {
        assert_eq!(
            transaction(Movement::Sale, "capture", 7, 1500, "CAD"),
            "Sale: approved capture 7 of 15.00 CAD"
        );
        assert_eq!(
            transaction_now(
                7,
                Movement::None,
                "DECLINED",
                "purchase",
                1500,
                "CAD",
                Some(3)
            ),
            "transaction 7 now moves no money (DECLINED purchase, 15.00 CAD)"
        );
        assert_eq!(
            transaction_now(
                7,
                Movement::RefundReversed,
                "APPROVED",
                "reverse",
                900,
                "USD",
                Some(3)
            ),
            "transaction 7 now reads refund reversed of 9.00 USD in batch 3"
        );
    }
}
