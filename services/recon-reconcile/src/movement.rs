//! What one transaction does to money. Only approved transactions move money; a
//! preauth or a verify never does (a preauth holds funds, its capture moves them).

use serde::{Deserialize, Serialize};

/// The money category of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// An approved purchase or capture.
    Sale,
    /// An approved refund.
    Refund,
    /// An approved reverse of a purchase or capture.
    SaleReversed,
    /// An approved reverse of a refund.
    RefundReversed,
    /// Declined, a preauth or a verify: no money moves.
    None,
}

/// The transaction facts the rules read (the ledger's typed columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionFacts<'a> {
    /// Helcim's status: `APPROVED` (or `APPROVAL`), `DECLINED`, or something unknown.
    pub status: &'a str,
    /// `purchase`, `preauth`, `verify`, `capture`, `refund`, `reverse`, or unknown.
    pub kind: &'a str,
    /// For a reverse: whether what it reverses is a refund (Helcim's transaction has no
    /// original id, so the ledger finds the original: see the store's rule).
    pub reverses_refund: bool,
}

impl Movement {
    /// The category of a transaction; `None` for anything that moves no money,
    /// including statuses and types this version does not know (those are exceptions
    /// of their own, `unknown_status`, not silently posted).
    pub fn of(facts: &TransactionFacts<'_>) -> Movement {
        if !is_approved(facts.status) {
            return Movement::None;
        }
        match facts.kind {
            "purchase" | "capture" => Movement::Sale,
            "refund" => Movement::Refund,
            "reverse" if facts.reverses_refund => Movement::RefundReversed,
            "reverse" => Movement::SaleReversed,
            _ => Movement::None,
        }
    }

    /// The public name (`sale`, `refund`, `sale_reversed`, `refund_reversed`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Movement::Sale => "sale",
            Movement::Refund => "refund",
            Movement::SaleReversed => "sale_reversed",
            Movement::RefundReversed => "refund_reversed",
            Movement::None => "none",
        }
    }

    /// The effect on the batch's net, per minor unit of the transaction's amount:
    /// net = sales − refunds − sales reversed + refunds reversed.
    pub fn net_sign(self) -> i64 {
        match self {
            Movement::Sale | Movement::RefundReversed => 1,
            Movement::Refund | Movement::SaleReversed => -1,
            Movement::None => 0,
        }
    }
}

/// `APPROVED`, and the `APPROVAL` some Helcim pages show.
pub fn is_approved(status: &str) -> bool {
    matches!(status, "APPROVED" | "APPROVAL")
}

/// A status this version knows.
pub fn is_known_status(status: &str) -> bool {
    matches!(status, "APPROVED" | "APPROVAL" | "DECLINED")
}

/// A type a reverse can undo (a purchase, capture or refund): recording one of these
/// may change what a reverse of the same card, invoice and amount undoes.
pub fn is_reversible_kind(kind: &str) -> bool {
    matches!(kind, "purchase" | "capture" | "refund")
}

/// A transaction type this version knows.
pub fn is_known_kind(kind: &str) -> bool {
    matches!(
        kind,
        "purchase" | "preauth" | "verify" | "capture" | "refund" | "reverse"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(status: &str, kind: &str, reverses_refund: bool) -> Movement {
        Movement::of(&TransactionFacts {
            status,
            kind,
            reverses_refund,
        })
    }

    #[test]
    fn only_approved_money_transactions_move_money() {
        assert_eq!(of("APPROVED", "purchase", false), Movement::Sale);
        assert_eq!(of("APPROVAL", "capture", false), Movement::Sale);
        assert_eq!(of("APPROVED", "refund", false), Movement::Refund);
        assert_eq!(of("APPROVED", "reverse", false), Movement::SaleReversed);
        assert_eq!(of("APPROVED", "reverse", true), Movement::RefundReversed);
        for (status, kind) in [
            ("DECLINED", "purchase"),
            ("APPROVED", "preauth"),
            ("APPROVED", "verify"),
            ("HELD", "purchase"),
            ("APPROVED", "chargeback"),
        ] {
            assert_eq!(of(status, kind, false), Movement::None, "{status} {kind}");
        }
    }
}

/// A transaction as the reverse rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: u64,
    pub status: &'a str,
    pub kind: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub invoice_number: &'a str,
    pub card_token: &'a str,
    /// Any value that orders transactions by creation (e.g. Unix microseconds).
    pub created: i64,
}

/// Whether a reverse undoes a refund rather than a sale. Helcim's transaction names no
/// original, so the rule finds it: the newest approved purchase, capture or refund of
/// the same card, invoice, amount and currency created no later than the reverse (a
/// reverse voids a transaction of the open batch, the latest first). No such
/// transaction: a sale is assumed (the common case).
pub fn reverses_refund(reverse: &Candidate<'_>, others: &[Candidate<'_>]) -> bool {
    others
        .iter()
        .filter(|o| {
            o.id != reverse.id
                && is_approved(o.status)
                && is_reversible_kind(o.kind)
                && o.amount_minor == reverse.amount_minor
                && o.currency == reverse.currency
                && o.invoice_number == reverse.invoice_number
                && o.card_token == reverse.card_token
                && o.created <= reverse.created
        })
        .max_by_key(|o| (o.created, o.id))
        .is_some_and(|original| original.kind == "refund")
}

#[cfg(test)]
mod reverse_tests {
    use super::*;

    fn tx(id: u64, kind: &'static str, created: i64) -> Candidate<'static> {
        Candidate {
            id,
            status: "APPROVED",
            kind,
            amount_minor: 500,
            currency: "CAD",
            invoice_number: "INV1",
            card_token: "tok",
            created,
        }
    }

    #[test]
    fn a_reverse_undoes_the_newest_matching_sale_or_refund_before_it() {
        let reverse = tx(9, "reverse", 30);
        assert!(!reverses_refund(&reverse, &[tx(1, "purchase", 10)]));
        assert!(reverses_refund(
            &reverse,
            &[tx(1, "purchase", 10), tx(2, "refund", 20)]
        ));
        // A refund made after the reverse is not what it reversed.
        assert!(!reverses_refund(
            &reverse,
            &[tx(1, "purchase", 10), tx(2, "refund", 40)]
        ));
        assert!(!reverses_refund(&reverse, &[]));
        let other_card = Candidate {
            card_token: "other",
            ..tx(2, "refund", 20)
        };
        assert!(!reverses_refund(
            &reverse,
            &[tx(1, "purchase", 10), other_card]
        ));
    }
}
