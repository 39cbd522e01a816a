//! The attribution engine (docs/attribution.md): turns the ledger and the evidence
//! into gaps within a minute, escalates them as the month's close nears, freezes the
//! month's report at the close, and publishes alerts. Every replica runs it; the
//! database's constraints and row locks, not timing, keep them from doubling anything.
//!
//! - [`settings`]: grace, match window, close zone, thresholds, clock.
//! - [`engine`]: matching, verdicts and gaps as the ledger and the evidence change.

pub mod engine;
pub mod settings;
