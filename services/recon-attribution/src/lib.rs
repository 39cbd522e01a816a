//! `recon-attribution`: the rules behind attribution gaps, apart from any I/O.
//!
//! - [`matching`]: which ledger transaction a piece of evidence is about;
//! - [`classify`]: gap classes, orphans, and the gap lifecycle;
//! - [`month`]: calendar months in the close time zone, their close (the deadline)
//!   and the escalation thresholds before it;
//! - [`escalation`]: which thresholds an account has crossed, and which to alert;
//! - [`clock`]: where "now" comes from (the system, or an offset a test controls);
//! - [`model`]: gap classes, statuses and transaction kinds, with their public names;
//! - [`report`]: the month report's numbers and its byte-stable JSON and CSV.

pub mod classify;
pub mod clock;
pub mod escalation;
pub mod matching;
pub mod model;
pub mod month;
pub mod report;

pub use clock::Clock;
pub use model::{GapClass, GapStatus, Kind, OrphanReason, Resolution};
pub use month::{CloseCalendar, Month};
