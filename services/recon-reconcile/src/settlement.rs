//! Settlement verdicts: a closed batch's ledger totals against Helcim's stats.
//!
//! `balanced` when count, sales, refunds, sales reversed, refunds reversed and net all
//! agree; otherwise `mismatch`, with a bridge: the transactions and amounts that
//! explain the net difference, and an `unexplained` remainder when Helcim's stats
//! disagree with its own transactions. The bridge's amounts always sum to the
//! difference (Helcim's net minus the ledger's). An open batch is `open`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::movement::Movement;

/// Totals of a batch, in minor units of its currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Every transaction, declined and non-money ones included (Helcim's `countTotal`).
    pub count: i64,
    pub sales: i64,
    pub refunds: i64,
    pub sales_reversed: i64,
    pub refunds_reversed: i64,
    /// sales − refunds − sales reversed + refunds reversed.
    pub net: i64,
}

impl Totals {
    pub fn add(&mut self, movement: Movement, amount_minor: i64) {
        self.count += 1;
        match movement {
            Movement::Sale => self.sales += amount_minor,
            Movement::Refund => self.refunds += amount_minor,
            Movement::SaleReversed => self.sales_reversed += amount_minor,
            Movement::RefundReversed => self.refunds_reversed += amount_minor,
            Movement::None => {}
        }
        self.net += movement.net_sign() * amount_minor;
    }

    pub fn of<'a>(transactions: impl IntoIterator<Item = &'a BatchTransaction>) -> Totals {
        let mut totals = Totals::default();
        for tx in transactions {
            totals.add(tx.movement, tx.amount_minor);
        }
        totals
    }
}

/// A transaction of the batch, as the ledger or Helcim's listing has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchTransaction {
    pub transaction_id: u64,
    pub movement: Movement,
    pub amount_minor: i64,
}

impl BatchTransaction {
    /// Its effect on the batch's net.
    pub fn net_effect(&self) -> i64 {
        self.movement.net_sign() * self.amount_minor
    }
}

/// Why a bridge item explains part of a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BridgeReason {
    /// In the ledger's batch, not in Helcim's listing of the batch.
    NotInHelcimBatch,
    /// In Helcim's listing of the batch, not in the ledger's batch.
    NotInLedger,
    /// In both, with a different effect on the net.
    AmountDiffers,
    /// What no transaction explains: Helcim's stats disagree with its own transactions.
    Unexplained,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BridgeItem {
    pub reason: BridgeReason,
    /// `None` for [`BridgeReason::Unexplained`].
    pub transaction_id: Option<u64>,
    /// Signed minor units: the part of (Helcim's net − the ledger's net) this explains.
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    Open,
    Balanced,
    Mismatch {
        /// Helcim's net minus the ledger's.
        difference_minor: i64,
        bridge: Vec<BridgeItem>,
    },
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Open => "open",
            Verdict::Balanced => "balanced",
            Verdict::Mismatch { .. } => "mismatch",
        }
    }
}

/// The verdict on a batch. `helcim` is `None` while the batch is open; `listing` is
/// Helcim's transactions of the batch (by `cardBatchId`), when they were listed.
pub fn verdict(
    ledger: &[BatchTransaction],
    helcim: Option<&Totals>,
    listing: Option<&[BatchTransaction]>,
) -> Verdict {
    let Some(helcim) = helcim else {
        return Verdict::Open;
    };
    let ours = Totals::of(ledger);
    if ours == *helcim {
        return Verdict::Balanced;
    }
    let difference_minor = helcim.net - ours.net;
    let mut bridge = Vec::new();
    if let Some(listing) = listing {
        let listed: BTreeMap<u64, &BatchTransaction> =
            listing.iter().map(|t| (t.transaction_id, t)).collect();
        let held: BTreeMap<u64, &BatchTransaction> =
            ledger.iter().map(|t| (t.transaction_id, t)).collect();
        for (id, tx) in &held {
            match listed.get(id) {
                None => push(
                    &mut bridge,
                    BridgeReason::NotInHelcimBatch,
                    *id,
                    -tx.net_effect(),
                ),
                Some(theirs) => push(
                    &mut bridge,
                    BridgeReason::AmountDiffers,
                    *id,
                    theirs.net_effect() - tx.net_effect(),
                ),
            }
        }
        for (id, tx) in &listed {
            if !held.contains_key(id) {
                push(&mut bridge, BridgeReason::NotInLedger, *id, tx.net_effect());
            }
        }
    }
    let explained: i64 = bridge.iter().map(|b| b.amount_minor).sum();
    if explained != difference_minor || bridge.is_empty() {
        bridge.push(BridgeItem {
            reason: BridgeReason::Unexplained,
            transaction_id: None,
            amount_minor: difference_minor - explained,
        });
    }
    Verdict::Mismatch {
        difference_minor,
        bridge,
    }
}

fn push(bridge: &mut Vec<BridgeItem>, reason: BridgeReason, id: u64, amount_minor: i64) {
    if amount_minor != 0 || reason != BridgeReason::AmountDiffers {
        bridge.push(BridgeItem {
            reason,
            transaction_id: Some(id),
            amount_minor,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(id: u64, movement: Movement, amount_minor: i64) -> BatchTransaction {
        BatchTransaction {
            transaction_id: id,
            movement,
            amount_minor,
        }
    }

    #[test]
    fn equal_totals_balance_and_an_open_batch_is_open() {
        let ledger = [tx(1, Movement::Sale, 1000), tx(2, Movement::Refund, 300)];
        let helcim = Totals::of(&ledger);
        assert_eq!(helcim.net, 700);
        assert_eq!(verdict(&ledger, Some(&helcim), None), Verdict::Balanced);
        assert_eq!(verdict(&ledger, None, None), Verdict::Open);
    }

    #[test]
    fn the_bridge_names_the_transactions_and_sums_to_the_difference() {
        let ledger = [
            tx(1, Movement::Sale, 1000),
            tx(2, Movement::Sale, 500),
            tx(3, Movement::Refund, 200),
        ];
        let listing = [
            tx(1, Movement::Sale, 1200),
            tx(3, Movement::Refund, 200),
            tx(4, Movement::Sale, 50),
        ];
        let mut helcim = Totals::of(&listing);
        helcim.sales += 7; // stats that disagree with Helcim's own transactions
        helcim.net += 7;
        let Verdict::Mismatch {
            difference_minor,
            bridge,
        } = verdict(&ledger, Some(&helcim), Some(&listing))
        else {
            panic!("a mismatch")
        };
        assert_eq!(difference_minor, helcim.net - 1300);
        assert_eq!(
            bridge.iter().map(|b| b.amount_minor).sum::<i64>(),
            difference_minor
        );
        let reasons: Vec<_> = bridge
            .iter()
            .map(|b| (b.reason, b.transaction_id, b.amount_minor))
            .collect();
        assert!(reasons.contains(&(BridgeReason::AmountDiffers, Some(1), 200)));
        assert!(reasons.contains(&(BridgeReason::NotInHelcimBatch, Some(2), -500)));
        assert!(reasons.contains(&(BridgeReason::NotInLedger, Some(4), 50)));
        assert!(reasons.contains(&(BridgeReason::Unexplained, None, 7)));
    }

    #[test]
    fn a_count_difference_alone_is_a_mismatch_with_a_zero_unexplained_item() {
        let ledger = [tx(1, Movement::Sale, 1000)];
        let listing = [tx(1, Movement::Sale, 1000), tx(2, Movement::None, 0)];
        let helcim = Totals::of(&listing);
        let v = verdict(&ledger, Some(&helcim), Some(&listing));
        let Verdict::Mismatch {
            difference_minor,
            bridge,
        } = v
        else {
            panic!()
        };
        assert_eq!(difference_minor, 0);
        assert_eq!(
            bridge,
            vec![BridgeItem {
                reason: BridgeReason::NotInLedger,
                transaction_id: Some(2),
                amount_minor: 0
            }]
        );
    }
}
