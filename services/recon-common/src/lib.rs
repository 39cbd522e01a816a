//! What every helcim-recon binary shares.

pub mod shutdown;
pub mod telemetry;
