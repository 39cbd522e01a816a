//! What every helcim-recon binary shares.

pub mod metrics;
pub mod redact;
pub mod secrets;
pub mod shutdown;
#[cfg(feature = "test-support")]
pub mod tcp_proxy;
pub mod telemetry;
