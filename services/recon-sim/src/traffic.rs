//! Run-time traffic and injected discrepancies: transactions made now (on the
//! simulator's clock) in the accounts' open batches, each announced by webhook unless
//! the point is that it is not.
//!
//! Traffic is clean by construction, so a reconciliation of it must flag nothing:
//! every purchase uses a card of its own (no two sales look alike), refunds and
//! reverses copy their sale's card, invoice number (and, for a reverse, amount), and
//! nothing is refunded or reversed twice.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::activity::{BatchStats, Kind, Status, Transaction};
use crate::api::card_on_file;
use crate::ledger::{Ledger, NewTransaction};
use crate::outcomes::Refusal;
use crate::state::SimState;

/// What traffic and injections remember between calls.
#[derive(Debug, Default)]
pub struct TrafficState {
    serial: u64,
    /// Sales already refunded or reversed, and transactions an injection changed:
    /// never picked again.
    used: HashSet<u64>,
}

/// One transaction to make.
struct Make {
    kind: Kind,
    status: Status,
    amount_minor: i64,
    currency: Option<&'static str>,
    terminal_id: Option<String>,
    /// Copy card, customer and invoice from this transaction (a follow-up).
    like: Option<Transaction>,
    invoice_prefix: &'static str,
    announce: bool,
}

impl Make {
    fn sale(amount_minor: i64) -> Make {
        Make {
            kind: Kind::Purchase,
            status: Status::Approved,
            amount_minor,
            currency: None,
            terminal_id: None,
            like: None,
            invoice_prefix: "TRF",
            announce: true,
        }
    }
}

fn next_serial(state: &SimState) -> u64 {
    let mut traffic = state.traffic.lock().expect("lock poisoned");
    traffic.serial += 1;
    traffic.serial
}

fn amount_for(serial: u64) -> i64 {
    // Distinct cents, never `.05` (a decline at the Payment API).
    let cents = 500 + (serial * 7_919) % 49_000;
    let cents = if cents % 100 == 5 { cents + 1 } else { cents };
    i64::try_from(cents).unwrap_or(500)
}

/// Records one transaction and announces it (unless told not to); returns it.
fn make(state: &SimState, account_id: &str, make: Make) -> Result<Transaction, Refusal> {
    let serial = next_serial(state);
    let mut ledger = state.ledger_mut();
    let Some(account) = ledger.activity.account(account_id) else {
        return Err((404, format!("no account {account_id:?}")));
    };
    let currency = make
        .currency
        .or_else(|| account.terminals.first().map(|t| t.currency))
        .unwrap_or("CAD");
    let (card, customer_code, invoice_number) = match &make.like {
        Some(like) => (
            crate::ledger::CardOnFile {
                card_type: like.card_type,
                masked: like.card_number.clone(),
                token: like.card_token.clone(),
                holder: like.card_holder_name.clone(),
            },
            like.customer_code.clone(),
            like.invoice_number.clone(),
        ),
        None => (
            card_on_file(
                account_id,
                &format!("4124{:012}", serial),
                format!("Traffic Customer {}", serial % 97),
                state.seed,
            ),
            format!("CST{:04}", serial % 50),
            format!("{}{serial:07}", make.invoice_prefix),
        ),
    };
    let new = NewTransaction {
        account_id: account_id.to_string(),
        kind: make.kind,
        status: make.status,
        amount_minor: make.amount_minor,
        currency,
        terminal_id: make.terminal_id,
        original_transaction_id: make.like.as_ref().map(|t| t.transaction_id),
        card,
        customer_code,
        invoice_number,
        user: "API",
        made_by: None,
    };
    let tx = ledger.record(new).map_err(|reason| (409, reason))?.clone();
    let event = make
        .announce
        .then(|| SimState::card_transaction_event(&ledger, &tx));
    drop(ledger);
    if let Some(event) = event {
        state.announce(event);
    }
    Ok(tx)
}

/// The newest approved sale of the account that traffic has not refunded or reversed
/// and no injection changed yet: one made by traffic (`traffic_only`, so generated
/// history, which has follow-ups of its own, is never refunded twice), or any; with
/// `open_batch`, only one still in an open batch.
fn unused_sale(
    state: &SimState,
    account_id: &str,
    open_batch: bool,
    traffic_only: bool,
) -> Option<Transaction> {
    let used = state.traffic.lock().expect("lock poisoned").used.clone();
    let ledger = state.ledger();
    let hidden = state.faults().api.hidden_transaction_ids;
    let sale = ledger
        .transactions_of(account_id)
        .rev()
        .take(2_000)
        .find(|tx| {
            tx.status == Status::Approved
                && matches!(tx.kind, Kind::Purchase | Kind::Capture)
                && (!traffic_only || tx.invoice_number.starts_with("TRF"))
                && !used.contains(&tx.transaction_id)
                && !hidden.contains(&tx.transaction_id)
                && (!open_batch
                    || ledger
                        .activity
                        .batch(tx.card_batch_id)
                        .is_some_and(|b| b.closed_at.is_none()))
        })
        .cloned();
    drop(ledger);
    let sale = sale?;
    state
        .traffic
        .lock()
        .expect("lock poisoned")
        .used
        .insert(sale.transaction_id);
    Some(sale)
}

/// Makes `count` transactions on the account now, a realistic mix: mostly approved
/// purchases, some declines, preauths with their captures, refunds (full and partial)
/// of earlier sales, and reverses of sales still in the open batch. Returns their ids.
pub fn traffic(state: &SimState, account_id: &str, count: u32) -> Result<Vec<u64>, Refusal> {
    if state.ledger().activity.account(account_id).is_none() {
        return Err((404, format!("no account {account_id:?}")));
    }
    let mut made = Vec::with_capacity(count as usize);
    while made.len() < count as usize {
        let serial = state.traffic.lock().expect("lock poisoned").serial + 1;
        let amount = amount_for(serial);
        match serial % 20 {
            13 => {
                let declined = Make {
                    status: Status::Declined,
                    ..Make::sale(amount)
                };
                made.push(make(state, account_id, declined)?.transaction_id);
            }
            14 => {
                let preauth = make(
                    state,
                    account_id,
                    Make {
                        kind: Kind::Preauth,
                        ..Make::sale(amount)
                    },
                )?;
                made.push(preauth.transaction_id);
                let capture = Make {
                    kind: Kind::Capture,
                    like: Some(preauth),
                    ..Make::sale(amount)
                };
                made.push(make(state, account_id, capture)?.transaction_id);
            }
            15..=18 => {
                let reverse = serial % 20 == 17;
                let Some(sale) = unused_sale(state, account_id, reverse, true) else {
                    made.push(make(state, account_id, Make::sale(amount))?.transaction_id);
                    continue;
                };
                let amount_minor = match serial % 20 {
                    18 => (sale.amount_minor / 2).max(1),
                    _ => sale.amount_minor,
                };
                let follow_up = Make {
                    kind: if reverse { Kind::Reverse } else { Kind::Refund },
                    currency: Some(sale.currency),
                    terminal_id: Some(sale.terminal_id.clone()),
                    like: Some(sale),
                    ..Make::sale(amount_minor)
                };
                made.push(make(state, account_id, follow_up)?.transaction_id);
            }
            _ => made.push(make(state, account_id, Make::sale(amount))?.transaction_id),
        }
    }
    Ok(made)
}

/// `POST /sim/inject`: what to break.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Injection {
    pub kind: String,
    pub account_id: String,
    pub transaction_id: Option<u64>,
    pub card_batch_id: Option<u64>,
}

/// The kinds, and the exception each must lead to.
pub const INJECTIONS: [(&str, &str); 8] = [
    ("hidden_transaction", "missed_webhook"),
    ("amount_change", "amount_changed"),
    ("batch_stats_mismatch", "batch_mismatch"),
    ("unknown_refund", "orphan_refund"),
    ("duplicate", "duplicate_suspect"),
    ("currency_mismatch", "currency_mismatch"),
    ("unknown_status", "unknown_status"),
    ("vanish", "missing_in_api"),
];

/// Makes one discrepancy happen; answers what it did and the exception expected.
pub fn inject(state: &SimState, injection: &Injection) -> Result<Value, Refusal> {
    let Some(&(kind, expected)) = INJECTIONS.iter().find(|(k, _)| *k == injection.kind) else {
        let kinds: Vec<&str> = INJECTIONS.iter().map(|(k, _)| *k).collect();
        return Err((
            400,
            format!(
                "unknown injection kind {:?}; use one of: {}",
                injection.kind,
                kinds.join(", ")
            ),
        ));
    };
    let account = injection.account_id.as_str();
    if state.ledger().activity.account(account).is_none() {
        return Err((404, format!("no account {account:?}")));
    }
    let amount = amount_for(next_serial(state));
    let mut answer = json!({"kind": kind, "accountId": account, "expectedException": expected});
    let tx = match kind {
        "hidden_transaction" => make(
            state,
            account,
            Make {
                announce: false,
                ..Make::sale(amount)
            },
        )?,
        "unknown_refund" => make(
            state,
            account,
            Make {
                kind: Kind::Refund,
                invoice_prefix: "ORPHAN",
                ..Make::sale(amount)
            },
        )?,
        "unknown_status" => make(
            state,
            account,
            Make {
                status: Status::Held,
                ..Make::sale(amount)
            },
        )?,
        "duplicate" => {
            let original = make(state, account, Make::sale(amount))?;
            answer["originalTransactionId"] = json!(original.transaction_id);
            // Part of this injection: no other may pick it (e.g. hide it).
            state
                .traffic
                .lock()
                .expect("lock poisoned")
                .used
                .insert(original.transaction_id);
            make(
                state,
                account,
                Make {
                    like: Some(original),
                    ..Make::sale(amount)
                },
            )?
        }
        "currency_mismatch" => currency_mismatch(state, account, amount)?,
        "amount_change" => change_amount(state, account, injection.transaction_id)?,
        "vanish" => {
            let tx = target(state, account, injection.transaction_id)?;
            state.update_faults(|f| {
                f.api.hidden_transaction_ids.insert(tx.transaction_id);
            });
            tx
        }
        "batch_stats_mismatch" => {
            let (batch, offset) = tamper(state, account, injection.card_batch_id)?;
            answer["cardBatchId"] = json!(batch);
            answer["statsOffsetMinor"] = json!(offset);
            return Ok(answer);
        }
        other => return Err((400, format!("injection kind {other:?} is not handled"))),
    };
    state
        .traffic
        .lock()
        .expect("lock poisoned")
        .used
        .insert(tx.transaction_id);
    answer["transactionId"] = json!(tx.transaction_id);
    answer["cardBatchId"] = json!(tx.card_batch_id);
    Ok(answer)
}

/// The named transaction of the account, or its newest unused run-time sale.
fn target(state: &SimState, account: &str, id: Option<u64>) -> Result<Transaction, Refusal> {
    match id {
        Some(id) => state
            .ledger()
            .transaction_of(account, id)
            .cloned()
            .ok_or_else(|| (404, format!("account {account} has no transaction {id}"))),
        None => unused_sale(state, account, false, false).ok_or_else(|| {
            (
                409,
                "the account has no approved sale to change".to_string(),
            )
        }),
    }
}

/// Recomputes a batch's stats from its transactions (an amount changed).
fn restate(ledger: &mut Ledger, batch_id: u64) {
    let stats = BatchStats::of(
        ledger
            .activity
            .transactions
            .iter()
            .filter(|t| t.card_batch_id == batch_id),
        &ledger.activity,
    );
    if let Ok(index) = ledger
        .activity
        .batches
        .binary_search_by_key(&batch_id, |b| b.card_batch_id)
    {
        ledger.activity.batches[index].stats = stats;
    }
}

/// Helcim changes a transaction's amount after it was fetched; its batch's stats
/// follow, as Helcim's own would.
fn change_amount(state: &SimState, account: &str, id: Option<u64>) -> Result<Transaction, Refusal> {
    let tx = target(state, account, id)?;
    let mut ledger = state.ledger_mut();
    let index = ledger
        .activity
        .transactions
        .binary_search_by_key(&tx.transaction_id, |t| t.transaction_id)
        .map_err(|_| (404, "the transaction is gone".to_string()))?;
    ledger.activity.transactions[index].amount_minor += 100;
    let changed = ledger.activity.transactions[index].clone();
    restate(&mut ledger, changed.card_batch_id);
    Ok(changed)
}

/// A transaction in the other currency, in a batch that already holds this one's.
fn currency_mismatch(state: &SimState, account: &str, amount: i64) -> Result<Transaction, Refusal> {
    let terminal = state
        .ledger()
        .activity
        .account(account)
        .and_then(|a| a.terminals.first().cloned())
        .ok_or_else(|| (409, format!("account {account} has no terminal")))?;
    // The batch's currency is its first transaction's: make sure it has one.
    let has_open = state.ledger().activity.batches.iter().any(|b| {
        b.terminal_id == terminal.terminal_id && b.closed_at.is_none() && b.stats.count_total > 0
    });
    if !has_open {
        make(state, account, Make::sale(amount + 1))?;
    }
    let other = if terminal.currency == "CAD" {
        "USD"
    } else {
        "CAD"
    };
    make(
        state,
        account,
        Make {
            currency: Some(other),
            terminal_id: Some(terminal.terminal_id),
            ..Make::sale(amount)
        },
    )
}

/// Reported stats that disagree with the batch's transactions: sales and net up by
/// 12.34. The named batch, or the account's newest open one.
fn tamper(state: &SimState, account: &str, id: Option<u64>) -> Result<(u64, i64), Refusal> {
    const OFFSET: i64 = 1_234;
    let mut ledger = state.ledger_mut();
    let batch = ledger
        .activity
        .batches
        .iter_mut()
        .rev()
        .find(|b| {
            b.account_id == account
                && id.is_none_or(|id| id == b.card_batch_id)
                && (id.is_some() || b.closed_at.is_none())
        })
        .ok_or_else(|| {
            (
                409,
                format!("account {account} has no such batch (or no open one): make traffic first"),
            )
        })?;
    batch.stats_offset_minor += OFFSET;
    Ok((batch.card_batch_id, OFFSET))
}
