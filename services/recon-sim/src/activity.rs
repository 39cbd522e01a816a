//! The simulator's ground truth: every account, transaction, batch and terminal
//! cancel it made, in canonical form (integer minor units, UTC). Tests and scripts
//! compare a ledger against this; the Helcim-shaped JSON is rendered from it.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A simulated merchant account with its credentials.
///
/// The tokens are fake and exist only inside the simulator, which is why it may hand
/// them out on its control endpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub account_id: String,
    pub api_token: String,
    /// A token Helcim accepts but that lacks read permission: answers 403.
    pub no_access_token: String,
    /// Base64 verifier tokens; webhooks are signed with every one (rotation).
    pub verifier_tokens: Vec<String>,
    pub terminals: Vec<Terminal>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminal {
    pub terminal_id: String,
    pub currency: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Purchase,
    Preauth,
    Verify,
    Capture,
    Refund,
    Reverse,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Purchase => "purchase",
            Kind::Preauth => "preauth",
            Kind::Verify => "verify",
            Kind::Capture => "capture",
            Kind::Refund => "refund",
            Kind::Reverse => "reverse",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Approved,
    Declined,
    /// A status this version of Helcim's API is not known to send: only injected
    /// (`POST /sim/inject`, kind `unknown_status`), to test that nothing posts it.
    Held,
}

/// One card transaction, canonical.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub account_id: String,
    pub transaction_id: u64,
    pub created_at: DateTime<Utc>,
    /// `dateCreated` exactly as the API writes it (Mountain Time, no offset).
    pub date_created: String,
    pub card_batch_id: u64,
    pub terminal_id: String,
    pub status: Status,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub amount_minor: i64,
    pub currency: &'static str,
    /// The transaction a capture, refund or reverse acts on.
    pub original_transaction_id: Option<u64>,
    pub card_type: &'static str,
    pub card_number: String,
    pub card_token: String,
    pub card_holder_name: String,
    pub customer_code: String,
    pub invoice_number: String,
    pub approval_code: String,
    pub avs_response: &'static str,
    pub cvv_response: &'static str,
    pub user: &'static str,
}

/// A card batch and the totals of its transactions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    pub account_id: String,
    pub card_batch_id: u64,
    pub terminal_id: String,
    pub batch_number: u64,
    pub currency: &'static str,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `None` while open.
    pub closed_at: Option<DateTime<Utc>>,
    pub stats: BatchStats,
    /// Added to the reported sales and net (`POST /sim/inject`, kind
    /// `batch_stats_mismatch`): stats that disagree with the batch's transactions.
    pub stats_offset_minor: i64,
}

/// Batch totals, in the batch's currency's minor units.
///
/// Helcim does not document its formulas; the simulator's are:
/// sales = approved purchases + captures; refunds = approved refunds;
/// reversed = approved reverses of sales; refunds reversed = approved reverses of
/// refunds; net = sales − refunds − reversed + refunds reversed. Counts cover every
/// transaction in the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStats {
    pub net_sales: i64,
    pub total_sales: i64,
    pub total_refunds: i64,
    pub total_reversed: i64,
    pub total_refunds_reversed: i64,
    pub count_total: u64,
    pub count_approved: u64,
    pub count_declined: u64,
}

/// A Smart Terminal purchase the customer cancelled: no transaction, one webhook.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminalCancel {
    pub account_id: String,
    pub invoice_number: String,
    pub device_code: String,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub customer_code: String,
    pub cancelled_at: DateTime<Utc>,
}

/// Everything the simulator generated.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub accounts: Vec<Account>,
    /// In creation order (and so in id order).
    pub transactions: Vec<Transaction>,
    pub batches: Vec<Batch>,
    pub terminal_cancels: Vec<TerminalCancel>,
}

impl BatchStats {
    /// Totals for a batch's transactions; the single definition the simulator uses.
    pub fn of<'a>(transactions: impl IntoIterator<Item = &'a Transaction>, all: &Activity) -> Self {
        let mut stats = BatchStats::default();
        for tx in transactions {
            stats.add(tx, |id| all.transaction(id));
        }
        stats
    }

    /// Adds one transaction; `lookup` finds the original of a reverse.
    pub fn add<'a>(&mut self, tx: &Transaction, lookup: impl Fn(u64) -> Option<&'a Transaction>) {
        self.count_total += 1;
        match tx.status {
            Status::Declined => {
                self.count_declined += 1;
                return;
            }
            // Neither approved nor declined: counted, no money.
            Status::Held => return,
            Status::Approved => {}
        }
        self.count_approved += 1;
        match tx.kind {
            Kind::Purchase | Kind::Capture => self.total_sales += tx.amount_minor,
            Kind::Refund => self.total_refunds += tx.amount_minor,
            Kind::Reverse => {
                let original = tx.original_transaction_id.and_then(&lookup);
                if original.is_some_and(|o| o.kind == Kind::Refund) {
                    self.total_refunds_reversed += tx.amount_minor;
                } else {
                    self.total_reversed += tx.amount_minor;
                }
            }
            Kind::Preauth | Kind::Verify => {}
        }
        self.net_sales = self.total_sales - self.total_refunds - self.total_reversed
            + self.total_refunds_reversed;
    }
}

impl Activity {
    pub fn transaction(&self, id: u64) -> Option<&Transaction> {
        // Ids are assigned in creation order, so the list is sorted by id.
        self.transactions
            .binary_search_by_key(&id, |tx| tx.transaction_id)
            .ok()
            .map(|index| &self.transactions[index])
    }

    pub fn batch(&self, id: u64) -> Option<&Batch> {
        self.batches
            .binary_search_by_key(&id, |batch| batch.card_batch_id)
            .ok()
            .map(|index| &self.batches[index])
    }

    pub fn account(&self, account_id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.account_id == account_id)
    }
}
