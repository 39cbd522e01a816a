//! `recon-receiver`: the service Helcim calls. It verifies each webhook's Standard
//! Webhooks signature against the account's verifier tokens and answers 2xx only once
//! RabbitMQ has confirmed the persistent message; anything it cannot queue durably is
//! refused with 503 so Helcim retries.
//!
//! Pure decisions live in [`signature`] and [`intake`]; I/O in [`routes`],
//! [`accounts`] and `recon-queue`.

pub mod accounts;
pub mod config;
pub mod intake;
pub mod metrics;
pub mod routes;
pub mod secrets;
pub mod signature;
pub mod startup;
