//! `recon-worker`: takes verified webhooks off the work queue, fetches each card
//! transaction and its batch from Helcim within the account's limits, and records them
//! in Postgres in one database transaction with the delivery, acknowledging the
//! message only after the commit.
//!
//! - [`reconcile`]: the pure rule that marks a transaction matched or an exception;
//! - [`process`]: what one envelope leads to (done, retry later, dead-letter);
//! - [`ledger`]: the Postgres writes; [`clients`]: one Helcim client per account;
//! - [`consume`]: the consumer loop with graceful shutdown, [`policy`]: when to retry
//!   and when to give up, [`inflight`]: what readiness knows of the consumer,
//!   [`redeliveries`]: the delivery limit where the broker keeps none;
//! - [`sweep`]: scheduled sweeps for what webhooks missed and batches that closed,
//!   with their settlement verdicts (and `reconctl backfill`);
//! - [`startup`]: the wiring.

pub mod attribution;
mod batch_cache;
pub mod clients;
pub mod config;
pub mod connected;
pub mod consume;
pub mod inflight;
pub mod ledger;
pub mod policy;
pub mod process;
pub mod reconcile;
pub mod redeliveries;
pub mod startup;
pub mod sweep;
