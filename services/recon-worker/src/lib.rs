//! `recon-worker`: takes verified webhooks off the work queue, fetches each card
//! transaction and its batch from Helcim within the account's limits, and records them
//! in Postgres in one database transaction with the delivery, acknowledging the
//! message only after the commit.
//!
//! - [`reconcile`]: the pure rule that marks a transaction matched or an exception;
//! - [`process`]: what one envelope leads to (done, retry later, dead-letter);
//! - [`ledger`]: the Postgres writes; [`clients`]: one Helcim client per account;
//! - [`consume`]: the consumer loop with graceful shutdown; [`startup`]: wiring.

mod batch_cache;
pub mod clients;
pub mod config;
pub mod connected;
pub mod consume;
pub mod ledger;
pub mod process;
pub mod reconcile;
pub mod startup;
