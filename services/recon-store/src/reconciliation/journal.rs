//! The journal in Postgres: posting a transaction's entry (and its corrections), a
//! batch's settlement, and reading balances. The rules are `recon_reconcile::journal`;
//! the database enforces balance and immutability on its own.
//!
//! Posting always recomputes what the journal should say from the stored rows and
//! compares it with the source's **active** entry (its entry that no correction has
//! reversed): the same, nothing is written (so posting twice is harmless); different,
//! the active entry's exact reversal (a `correction`) and the new entry are appended.

/// SQL (a scalar subquery over `journal_entries e`, whose `WHERE` the caller goes on
/// with, then closes with `)`) that renders the matching non-correction entries that
/// nothing reverses, with their lines, as a JSON array, oldest first. A macro so that
/// the queries stay literal strings.
macro_rules! active_entries_json {
    () => {
        "(SELECT COALESCE(json_agg(json_build_object(
        'id', e.id, 'kind', e.kind, 'card_batch_id', e.card_batch_id,
        'effective_at', e.effective_at,
        'lines', (SELECT json_agg(json_build_object(
                      'account', l.ledger_account, 'currency', l.currency,
                      'amount_minor', l.amount_minor) ORDER BY l.line_no)
                  FROM journal_lines l WHERE l.entry_id = e.id)) ORDER BY e.id), '[]'::json)
     FROM journal_entries e
     WHERE e.kind <> 'correction'
       AND NOT EXISTS (SELECT 1 FROM journal_entries c WHERE c.reverses_entry_id = e.id)"
    };
}

mod memo;
mod read;
mod settlement;
mod store;
mod transaction;

pub use read::{Balance, Entry, balances, batch_clearing, entries};
pub use settlement::post_settlement;
pub use transaction::post_transaction;

/// What a posting wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Posted {
    pub entries: u32,
    pub corrections: u32,
}

impl Posted {
    fn add(&mut self, other: Posted) {
        self.entries += other.entries;
        self.corrections += other.corrections;
    }
}
