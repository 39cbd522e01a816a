//! The attribution engine (docs/attribution.md): turns the ledger and the evidence
//! into gaps within a minute, escalates them as the month's close nears, freezes the
//! month's report at the close, and publishes alerts. Every replica runs it; the
//! database's constraints and row locks, not timing, keep them from doubling anything.
//!
//! - [`settings`]: grace, match window, close zone, thresholds, clock.
//! - [`engine`]: matching, verdicts and gaps as the ledger and the evidence change;
//! - [`close`]: expiry at the close and the frozen report; [`escalate`]: alerts as
//!   the close nears; [`publish`]: the alert outbox to `recon.alerts`; [`webhooks`]:
//!   signed alert webhooks; [`gauges`]: Prometheus gauges; [`alerting`]: the loops
//!   that run them.

pub mod alerting;
pub mod close;
pub mod engine;
pub mod escalate;
pub mod gauges;
pub mod publish;
pub mod settings;
pub mod webhooks;
