//! What every helcim-recon binary shares.

pub mod metrics;
pub mod shutdown;
pub mod telemetry;
