//! `recon-sim`: a Helcim simulator, good enough that nothing else in helcim-recon needs
//! Helcim to be tested.
//!
//! - [`generate`] makes deterministic merchant activity from a seed ([`activity`]);
//! - [`api`] serves it as Helcim's v2 API does, quirks included ([`render`]), within
//!   per-account [`limits`], with [`faults`] on demand, and takes payments (Payment
//!   API, HelcimPay.js, Smart Terminal, Recurring API) that grow the [`ledger`];
//! - [`outcomes`] ends the flows a person finishes (checkout, terminal, own tools);
//! - [`webhooks`] signs and delivers it to a receiver, retrying as Helcim does;
//! - [`control`] exposes the ground truth and the fault switches under `/sim/`;
//! - [`server`] runs it all, in-process for tests or as the `recon-sim` binary.

pub mod activity;
pub mod api;
pub mod clock;
pub mod control;
pub mod faults;
pub mod generate;
pub mod ledger;
pub mod limits;
pub mod outcomes;
pub mod render;
pub mod server;
pub mod settings;
pub mod state;
pub mod traffic;
pub mod webhooks;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use generate::{GenerateConfig, generate};
pub use server::{RunningSim, SimConfig};

/// Helcim's zone. The simulator formats times itself rather than sharing the client's
/// code, so a bug on one side cannot hide the same bug on the other.
pub const HELCIM_TIME_ZONE: Tz = chrono_tz::America::Edmonton;

/// A UTC instant as Helcim writes it: Mountain Time, no offset.
pub fn format_mountain(time: DateTime<Utc>) -> String {
    time.with_timezone(&HELCIM_TIME_ZONE)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
