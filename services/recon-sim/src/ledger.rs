//! The account's books as they stand now: the generated activity plus everything made
//! at run time (payments through the API, checkouts, Smart Terminal payments, sales
//! from Helcim's own tools, connected accounts). The API and the truth read from here;
//! [`crate::state::SimState::activity`] keeps what was generated at start.
//!
//! Run-time transactions get ids above every generated one and land in the open batch
//! of the account's terminal for their currency, whose totals they join.

mod checkout;
mod devices;
mod recurring;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::activity::{Account, Activity, Batch, BatchStats, Kind, Status, Terminal, Transaction};
use crate::clock::{BatchClosing, SimClock};
use crate::format_mountain;
use crate::state::Caller;

pub use checkout::Checkout;
pub use devices::{Device, PendingTerminalPayment};
pub use recurring::{Recurring, RecurringKind, RecurringObject};

/// Which request made a run-time transaction, as the truth tells it. Never the token
/// itself: only what Helcim answered about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MadeBy {
    /// `payment/purchase`, `helcim-pay/initialize`, `devices/payment/purchase`, ...
    pub endpoint: &'static str,
    /// The `is-valid-partner-token` answered to that request: 1, 0, or `None` when the
    /// answer carried no such header.
    pub is_valid_partner_token: Option<u8>,
    pub partner_token_sent: bool,
    pub idempotency_key: Option<String>,
}

/// The card a run-time transaction was made with (already masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOnFile {
    pub card_type: &'static str,
    /// First six and last four digits.
    pub masked: String,
    pub token: String,
    pub holder: String,
}

/// A transaction to record: the ledger assigns its id, time, terminal and batch.
#[derive(Debug, Clone)]
pub struct NewTransaction {
    pub account_id: String,
    pub kind: Kind,
    pub status: Status,
    pub amount_minor: i64,
    pub currency: &'static str,
    /// `None`: the account's terminal for `currency`.
    pub terminal_id: Option<String>,
    pub original_transaction_id: Option<u64>,
    pub card: CardOnFile,
    pub customer_code: String,
    /// Empty: the ledger makes one up, as Helcim does.
    pub invoice_number: String,
    pub user: &'static str,
    pub made_by: Option<MadeBy>,
}

/// A transaction as `/sim/truth` shows it: canonical, plus which request made it
/// (`null` for the generated activity and for Helcim's own tools).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TruthTransaction<'a> {
    #[serde(flatten)]
    pub transaction: &'a Transaction,
    pub made_by: Option<&'a MadeBy>,
}

/// A merchant a partner referred, created at run time.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectedAccount {
    pub account_id: String,
    pub referred_by: String,
    pub created_at: DateTime<Utc>,
}

/// Everything the simulated Helcim knows now.
#[derive(Debug)]
pub struct Ledger {
    /// Generated activity plus run-time additions; lists stay in id order.
    pub activity: Activity,
    /// Run-time transactions made by a partner-program request (absent: no request of
    /// a partner's made it).
    pub made_by: HashMap<u64, MadeBy>,
    pub devices: Vec<Device>,
    pub checkouts: Vec<Checkout>,
    pub recurring: Recurring,
    pub connected_accounts: Vec<ConnectedAccount>,
    by_token: HashMap<String, Caller>,
    /// Each account's transactions, as indexes into `activity.transactions`.
    by_account: HashMap<String, Vec<usize>>,
    next_invoice: u64,
    serial: u64,
    rng: ChaCha8Rng,
    /// What dates run-time transactions and closes batches.
    clock: Arc<SimClock>,
    /// `None`: batches never close at run time (those generated closed stay closed).
    closing: Option<BatchClosing>,
}

impl Ledger {
    pub fn new(mut activity: Activity, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00BE_DE6E_5000);
        let accounts = std::mem::take(&mut activity.accounts);
        let mut ledger = Ledger {
            activity,
            made_by: HashMap::new(),
            devices: Vec::new(),
            checkouts: Vec::new(),
            recurring: Recurring::default(),
            connected_accounts: Vec::new(),
            by_token: HashMap::new(),
            by_account: HashMap::new(),
            next_invoice: 9_000_001,
            serial: 0,
            rng: ChaCha8Rng::seed_from_u64(rng.random()),
            clock: Arc::new(SimClock::default()),
            closing: None,
        };
        for (index, tx) in ledger.activity.transactions.iter().enumerate() {
            ledger
                .by_account
                .entry(tx.account_id.clone())
                .or_default()
                .push(index);
        }
        for account in accounts {
            let devices = Device::for_account(&account, &mut rng);
            ledger.devices.extend(devices);
            ledger.add_account(account);
        }
        ledger
    }

    fn add_account(&mut self, account: Account) {
        self.by_token.insert(
            account.api_token.clone(),
            Caller::Account(account.account_id.clone()),
        );
        self.by_token.insert(
            account.no_access_token.clone(),
            Caller::NoAccess(account.account_id.clone()),
        );
        self.activity.accounts.push(account);
    }

    pub fn caller(&self, token: Option<&str>) -> Caller {
        token
            .and_then(|t| self.by_token.get(t))
            .cloned()
            .unwrap_or(Caller::Unknown)
    }

    pub fn truth_of<'a>(&'a self, transaction: &'a Transaction) -> TruthTransaction<'a> {
        TruthTransaction {
            transaction,
            made_by: self.made_by.get(&transaction.transaction_id),
        }
    }

    /// The account's transactions in id order.
    pub fn transactions_of<'a>(
        &'a self,
        account_id: &str,
    ) -> impl DoubleEndedIterator<Item = &'a Transaction> + 'a {
        self.by_account
            .get(account_id)
            .into_iter()
            .flatten()
            .map(|&index| &self.activity.transactions[index])
    }

    /// One transaction of the account.
    pub fn transaction_of(&self, account_id: &str, id: u64) -> Option<&Transaction> {
        self.activity
            .transaction(id)
            .filter(|tx| tx.account_id == account_id)
    }

    /// The account's terminal that takes `currency`, if any.
    pub fn terminal_for(&self, account_id: &str, currency: &str) -> Option<&Terminal> {
        self.activity
            .account(account_id)?
            .terminals
            .iter()
            .find(|t| t.currency == currency)
    }

    /// A fresh random code (upper-case letters and digits), from the ledger's seeded
    /// generator: the same sequence of calls gives the same codes.
    pub fn code(&mut self, len: usize) -> String {
        crate::generate::code(&mut self.rng, len)
    }

    /// A number unique within this run (Smart Terminal requests).
    pub fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// An invoice number as Helcim makes one up when a payment names none; never one
    /// the generated activity uses.
    pub fn fresh_invoice_number(&mut self) -> String {
        self.next_invoice += 1;
        format!("INV{}", self.next_invoice - 1)
    }

    /// Records a transaction now, in the open batch of its terminal (opening one if
    /// the terminal has none), and returns it.
    pub fn record(&mut self, new: NewTransaction) -> Result<&Transaction, String> {
        let now = self.now();
        self.close_due_batches(now);
        self.record_at(new, now)
    }

    /// Dates and closes by `clock`, closing batches as `closing` says.
    pub fn set_time(&mut self, clock: Arc<SimClock>, closing: Option<BatchClosing>) {
        self.clock = clock;
        self.closing = closing;
    }

    /// Now on the simulator's clock, to the second.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Whether an open batch is due to close at `now`.
    pub fn closes_due(&self, now: DateTime<Utc>) -> bool {
        let Some(closing) = self.closing else {
            return false;
        };
        self.activity
            .batches
            .iter()
            .any(|b| b.closed_at.is_none() && close_of(closing, b) <= now)
    }

    /// Closes every open batch whose close time has passed: its close is then final,
    /// and the terminal's next transaction opens a new batch. Returns how many closed.
    pub fn close_due_batches(&mut self, now: DateTime<Utc>) -> usize {
        let Some(closing) = self.closing else {
            return 0;
        };
        let mut closed = 0;
        for batch in &mut self.activity.batches {
            let close = close_of(closing, batch);
            if batch.closed_at.is_none() && close <= now {
                batch.closed_at = Some(close);
                batch.updated_at = close;
                closed += 1;
            }
        }
        closed
    }

    fn record_at(
        &mut self,
        new: NewTransaction,
        at: DateTime<Utc>,
    ) -> Result<&Transaction, String> {
        let terminal_id = match new.terminal_id {
            Some(id) => id,
            None => self
                .terminal_for(&new.account_id, new.currency)
                .map(|t| t.terminal_id.clone())
                .ok_or_else(|| {
                    format!(
                        "account {} has no {} terminal",
                        new.account_id, new.currency
                    )
                })?,
        };
        let batch_index = self.open_batch(&new.account_id, &terminal_id, new.currency, at);
        let transaction_id = self
            .activity
            .transactions
            .last()
            .map_or(25_700_000, |tx| tx.transaction_id + 1);
        let invoice_number = if new.invoice_number.is_empty() {
            self.fresh_invoice_number()
        } else {
            new.invoice_number
        };
        let approved = new.status == Status::Approved;
        let approval_code = if approved {
            self.code(6)
        } else {
            String::new()
        };
        let tx = Transaction {
            account_id: new.account_id.clone(),
            transaction_id,
            created_at: at,
            date_created: format_mountain(at),
            card_batch_id: self.activity.batches[batch_index].card_batch_id,
            terminal_id,
            status: new.status,
            kind: new.kind,
            amount_minor: new.amount_minor,
            currency: new.currency,
            original_transaction_id: new.original_transaction_id,
            card_type: new.card.card_type,
            card_number: new.card.masked,
            card_token: new.card.token,
            card_holder_name: new.card.holder,
            customer_code: new.customer_code,
            invoice_number,
            approval_code,
            avs_response: "X",
            cvv_response: if approved { "M" } else { "N" },
            user: new.user,
        };
        let mut stats = self.activity.batches[batch_index].stats.clone();
        stats.add(&tx, |id| self.activity.transaction(id));
        let batch = &mut self.activity.batches[batch_index];
        batch.stats = stats;
        batch.updated_at = at;
        if let Some(made_by) = new.made_by {
            self.made_by.insert(transaction_id, made_by);
        }
        self.activity.transactions.push(tx);
        let index = self.activity.transactions.len() - 1;
        self.by_account
            .entry(new.account_id)
            .or_default()
            .push(index);
        Ok(&self.activity.transactions[index])
    }

    /// The terminal's open batch (the newest one without a close), opened now if none.
    fn open_batch(
        &mut self,
        account_id: &str,
        terminal_id: &str,
        currency: &'static str,
        at: DateTime<Utc>,
    ) -> usize {
        let batches = &self.activity.batches;
        if let Some(index) = batches
            .iter()
            .rposition(|b| b.terminal_id == terminal_id && b.closed_at.is_none())
        {
            return index;
        }
        let batch_number = batches
            .iter()
            .filter(|b| b.terminal_id == terminal_id)
            .map(|b| b.batch_number)
            .max()
            .unwrap_or(0)
            + 1;
        let card_batch_id = batches.last().map_or(3_000, |b| b.card_batch_id + 1);
        self.activity.batches.push(Batch {
            account_id: account_id.to_string(),
            card_batch_id,
            terminal_id: terminal_id.to_string(),
            batch_number,
            currency,
            created_at: at,
            updated_at: at,
            closed_at: None,
            stats: BatchStats::default(),
            stats_offset_minor: 0,
        });
        self.activity.batches.len() - 1
    }

    /// Creates a merchant account referred by `referred_by`: its own tokens, one
    /// terminal per currency, and a listening Smart Terminal.
    pub fn connect_account(&mut self, referred_by: &str, currencies: &[&'static str]) -> Account {
        let number = self.activity.accounts.len() + 1;
        let terminal_base = 70_000 + number * 10;
        let account = Account {
            account_id: format!("sim-merchant-{number}"),
            api_token: self.code(40),
            no_access_token: self.code(40),
            verifier_tokens: vec![crate::generate::verifier_token(&mut self.rng)],
            terminals: currencies
                .iter()
                .enumerate()
                .map(|(t, currency)| Terminal {
                    terminal_id: format!("{}", terminal_base + t),
                    currency,
                })
                .collect(),
        };
        let devices = Device::for_account(&account, &mut self.rng);
        self.devices.extend(devices.into_iter().take(1));
        self.connected_accounts.push(ConnectedAccount {
            account_id: account.account_id.clone(),
            referred_by: referred_by.to_string(),
            created_at: self.now(),
        });
        self.add_account(account.clone());
        account
    }
}

/// When a batch closes: on schedule, but never before its last transaction (a batch
/// generated open may have filled past a short schedule).
fn close_of(closing: BatchClosing, batch: &Batch) -> DateTime<Utc> {
    closing.close_of(batch.created_at).max(batch.updated_at)
}

/// Now, to the second (Helcim's times have no fractions).
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
}

#[cfg(test)]
mod tests;
