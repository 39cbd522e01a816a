//! `recon-reconcile`: the rules that turn stored Helcim transactions and batches into a
//! reconciliation, apart from any I/O.
//!
//! - [`movement`]: what a transaction does to money (a sale, a refund, a reversal of
//!   either, or nothing), the one classification journal and settlement share;
//! - [`journal`]: the chart of accounts and the posting rules of the double-entry
//!   journal (each entry balances per currency; corrections are exact reversals);
//! - [`settlement`]: a batch's ledger totals against Helcim's stats, the verdict and
//!   the bridge that explains a difference;
//! - [`exceptions`]: exception classes, statuses and the workflow between them.

pub mod exceptions;
pub mod journal;
pub mod movement;
pub mod settlement;

pub use exceptions::{ExceptionAction, ExceptionClass, ExceptionStatus};
pub use journal::{EntryKind, JournalAccount, Line};
pub use movement::Movement;
pub use settlement::{Totals, Verdict};
