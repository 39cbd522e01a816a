//! The chart of accounts and the posting rules of the double-entry journal.
//!
//! Amounts are signed minor units: debits positive, credits negative, so every entry's
//! lines sum to zero per currency. Per merchant account and currency:
//!
//! | movement          | debit                   | credit                  |
//! |-------------------|-------------------------|-------------------------|
//! | sale              | `card_clearing`         | `sales`                 |
//! | refund            | `refunds`               | `card_clearing`         |
//! | sale reversed     | `sales_reversed`        | `card_clearing`         |
//! | refund reversed   | `card_clearing`         | `refunds_reversed`      |
//! | batch settlement  | `settlement_receivable` | `card_clearing` (net)   |
//!
//! A batch's settlement moves its net out of clearing, so once a balanced batch has
//! settled its clearing nets to zero. A correction is the exact reversal of an earlier
//! entry (every sign flipped), followed by the entry that is right now: nothing is
//! ever updated in place.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::movement::Movement;

/// An account of the chart (the database's `journal_accounts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalAccount {
    CardClearing,
    Sales,
    Refunds,
    SalesReversed,
    RefundsReversed,
    SettlementReceivable,
}

impl JournalAccount {
    pub const ALL: [JournalAccount; 6] = [
        JournalAccount::CardClearing,
        JournalAccount::Sales,
        JournalAccount::Refunds,
        JournalAccount::SalesReversed,
        JournalAccount::RefundsReversed,
        JournalAccount::SettlementReceivable,
    ];

    /// The code stored in `journal_lines.ledger_account`.
    pub fn code(self) -> &'static str {
        match self {
            JournalAccount::CardClearing => "card_clearing",
            JournalAccount::Sales => "sales",
            JournalAccount::Refunds => "refunds",
            JournalAccount::SalesReversed => "sales_reversed",
            JournalAccount::RefundsReversed => "refunds_reversed",
            JournalAccount::SettlementReceivable => "settlement_receivable",
        }
    }

    pub fn parse(code: &str) -> Option<JournalAccount> {
        JournalAccount::ALL.into_iter().find(|a| a.code() == code)
    }
}

/// What an entry records (the database's `journal_entries.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Sale,
    Refund,
    SaleReversed,
    RefundReversed,
    Settlement,
    /// The exact reversal of an earlier entry.
    Correction,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Sale => "sale",
            EntryKind::Refund => "refund",
            EntryKind::SaleReversed => "sale_reversed",
            EntryKind::RefundReversed => "refund_reversed",
            EntryKind::Settlement => "settlement",
            EntryKind::Correction => "correction",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        [
            EntryKind::Sale,
            EntryKind::Refund,
            EntryKind::SaleReversed,
            EntryKind::RefundReversed,
            EntryKind::Settlement,
            EntryKind::Correction,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One line: a signed amount (debit positive) on an account, in a currency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Line {
    pub account: JournalAccount,
    /// ISO 4217 code, e.g. `CAD`.
    pub currency: String,
    pub amount_minor: i64,
}

impl Line {
    pub fn new(account: JournalAccount, currency: &str, amount_minor: i64) -> Line {
        Line {
            account,
            currency: currency.to_string(),
            amount_minor,
        }
    }
}

/// The entry a transaction posts: its kind and lines; `None` when it moves no money
/// (or its amount is zero).
pub fn transaction_entry(
    movement: Movement,
    amount_minor: i64,
    currency: &str,
) -> Option<(EntryKind, Vec<Line>)> {
    use JournalAccount::*;
    if amount_minor == 0 {
        return None;
    }
    let (kind, debit, credit) = match movement {
        Movement::Sale => (EntryKind::Sale, CardClearing, Sales),
        Movement::Refund => (EntryKind::Refund, Refunds, CardClearing),
        Movement::SaleReversed => (EntryKind::SaleReversed, SalesReversed, CardClearing),
        Movement::RefundReversed => (EntryKind::RefundReversed, CardClearing, RefundsReversed),
        Movement::None => return None,
    };
    Some((
        kind,
        vec![
            Line::new(debit, currency, amount_minor),
            Line::new(credit, currency, -amount_minor),
        ],
    ))
}

/// The settlement of a closed batch whose net is `net_minor`: the net leaves clearing
/// for the receivable (a negative net, more refunds than sales, the other way round).
/// `None` for a zero net.
pub fn settlement_lines(net_minor: i64, currency: &str) -> Option<Vec<Line>> {
    (net_minor != 0).then(|| {
        vec![
            Line::new(JournalAccount::SettlementReceivable, currency, net_minor),
            Line::new(JournalAccount::CardClearing, currency, -net_minor),
        ]
    })
}

/// The exact reversal of an entry's lines: every sign flipped, same order.
pub fn reversal(lines: &[Line]) -> Vec<Line> {
    lines
        .iter()
        .map(|line| Line {
            amount_minor: -line.amount_minor,
            ..line.clone()
        })
        .collect()
}

/// Whether the lines sum to zero in every currency, and there are at least two, none
/// of them zero (the rules the database enforces).
pub fn is_balanced(lines: &[Line]) -> bool {
    if lines.len() < 2 || lines.iter().any(|l| l.amount_minor == 0) {
        return false;
    }
    let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
    for line in lines {
        *sums.entry(&line.currency).or_default() += i128::from(line.amount_minor);
    }
    sums.values().all(|&sum| sum == 0)
}

/// Whether two entries have the same lines, in any order.
pub fn same_lines(a: &[Line], b: &[Line]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// Balances per account and currency (signed: debit positive).
pub type Balances = BTreeMap<(JournalAccount, String), i64>;

/// Adds lines to balances, dropping accounts that return to zero (so two sets of
/// balances compare equal however they were reached).
pub fn add_to_balances(balances: &mut Balances, lines: &[Line]) {
    for line in lines {
        let key = (line.account, line.currency.clone());
        let balance = balances.entry(key.clone()).or_default();
        *balance += line.amount_minor;
        if *balance == 0 {
            balances.remove(&key);
        }
    }
}

/// What to post for one source (a transaction, or a batch's settlement) so that its
/// active entry becomes `desired`: reverse the active one if it differs, then post
/// the desired one if there is one and it is not already active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Post the exact reversal of the active entry.
    pub reverse_active: bool,
    /// Post this entry.
    pub post: Option<(EntryKind, Vec<Line>)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        !self.reverse_active && self.post.is_none()
    }
}

/// `active`: the source's entry that no correction has reversed yet (at most one).
pub fn plan(active: Option<(EntryKind, &[Line])>, desired: Option<(EntryKind, Vec<Line>)>) -> Plan {
    match (active, desired) {
        (None, desired) => Plan {
            reverse_active: false,
            post: desired,
        },
        (Some(_), None) => Plan {
            reverse_active: true,
            post: None,
        },
        (Some((kind, lines)), Some(desired)) => {
            if kind == desired.0 && same_lines(lines, &desired.1) {
                Plan {
                    reverse_active: false,
                    post: None,
                }
            } else {
                Plan {
                    reverse_active: true,
                    post: Some(desired),
                }
            }
        }
    }
}

/// [`plan`] for an entry that also belongs to a card batch (transaction entries carry
/// their batch, so a batch's clearing can be summed): the same lines in another batch
/// are a change too, posted as the reversal in the old batch and the entry in the new.
pub fn plan_in_batch(
    active: Option<(EntryKind, &[Line], Option<u64>)>,
    desired: Option<(EntryKind, Vec<Line>)>,
    desired_batch: Option<u64>,
) -> Plan {
    let moved =
        matches!((&active, &desired), (Some((_, _, batch)), Some(_)) if *batch != desired_batch);
    let planned = plan(
        active.map(|(kind, lines, _)| (kind, lines)),
        desired.clone(),
    );
    if moved && planned.is_empty() {
        Plan {
            reverse_active: true,
            post: desired,
        }
    } else {
        planned
    }
}

/// The amount and currency a transaction or settlement entry records: its first line
/// (the debit of the movement), unsigned. `None` for no lines.
pub fn entry_amount(lines: &[Line]) -> Option<(i64, &str)> {
    lines
        .first()
        .map(|line| (line.amount_minor.abs(), line.currency.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_movement_posts_a_balanced_entry_and_none_posts_nothing() {
        for movement in [
            Movement::Sale,
            Movement::Refund,
            Movement::SaleReversed,
            Movement::RefundReversed,
        ] {
            let (_, lines) = transaction_entry(movement, 1234, "CAD").unwrap();
            assert!(is_balanced(&lines), "{movement:?}");
        }
        assert_eq!(transaction_entry(Movement::None, 1234, "CAD"), None);
        assert_eq!(transaction_entry(Movement::Sale, 0, "CAD"), None);
    }

    #[test]
    fn a_sale_then_its_settlement_leaves_clearing_at_zero() {
        let mut balances = Balances::new();
        let (_, sale) = transaction_entry(Movement::Sale, 5000, "USD").unwrap();
        let (_, refund) = transaction_entry(Movement::Refund, 1200, "USD").unwrap();
        add_to_balances(&mut balances, &sale);
        add_to_balances(&mut balances, &refund);
        add_to_balances(&mut balances, &settlement_lines(3800, "USD").unwrap());
        assert_eq!(
            balances.get(&(JournalAccount::CardClearing, "USD".into())),
            None
        );
        assert_eq!(
            balances[&(JournalAccount::SettlementReceivable, "USD".into())],
            3800
        );
    }

    #[test]
    fn a_plan_reverses_only_what_changed() {
        let (kind, lines) = transaction_entry(Movement::Sale, 100, "CAD").unwrap();
        let same = plan(Some((kind, &lines)), Some((kind, lines.clone())));
        assert!(same.is_empty());
        let changed = plan(
            Some((kind, &lines)),
            transaction_entry(Movement::Sale, 120, "CAD"),
        );
        assert!(changed.reverse_active && changed.post.is_some());
        let gone = plan(Some((kind, &lines)), None);
        assert!(gone.reverse_active && gone.post.is_none());
        let first = plan(None, Some((kind, lines.clone())));
        assert!(!first.reverse_active && first.post.is_some());
        assert!(is_balanced(&reversal(&lines)));
    }

    #[test]
    fn the_same_entry_in_another_batch_is_moved() {
        let (kind, lines) = transaction_entry(Movement::Sale, 100, "CAD").unwrap();
        let stay = plan_in_batch(
            Some((kind, &lines, Some(7))),
            Some((kind, lines.clone())),
            Some(7),
        );
        assert!(stay.is_empty());
        let moved = plan_in_batch(
            Some((kind, &lines, Some(7))),
            Some((kind, lines.clone())),
            Some(8),
        );
        assert!(moved.reverse_active && moved.post == Some((kind, lines.clone())));
        let gone = plan_in_batch(Some((kind, &lines, Some(7))), None, Some(8));
        assert!(gone.reverse_active && gone.post.is_none());
        assert_eq!(entry_amount(&lines), Some((100, "CAD")));
        assert_eq!(entry_amount(&reversal(&lines)), Some((100, "CAD")));
    }
}
