//! recon-api over real HTTP on 127.0.0.1:0 against a fresh, migrated Postgres database
//! per test: roles, key lifecycle, failed-attempt limits, the operations endpoints, and
//! attribution receipts, gaps and month reports.

mod attribution_report;
mod gap_support;
mod gaps;
mod harness;
mod key_lifecycle;
mod limits;
mod operations;
mod receipt_refusals;
mod receipt_support;
mod receipts;
mod roles;
mod transaction_exceptions;
