//! Attribution gaps in Postgres (migration 0009): the month report ([`report`]) and
//! the alert webhooks ([`alert_webhooks`]).
//! The engine that fills these tables lives in recon-worker (`attribution`); the
//! rules it follows live in the pure `recon-attribution` crate.

pub mod alert_webhooks;
pub mod report;
