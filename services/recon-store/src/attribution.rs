//! Attribution gaps in Postgres (migrations 0009 and on): the month report
//! ([`report`]) and which document of it to serve ([`documents`]), gaps as people work
//! them ([`gaps`]), and the alert webhooks ([`alert_webhooks`]).
//! The engine that fills these tables lives in recon-worker (`attribution`); the
//! rules it follows live in the pure `recon-attribution` crate.

pub mod alert_webhooks;
pub mod backfill;
pub mod documents;
pub mod gaps;
pub mod report;
