//! What every helcim-recon binary shares.

pub mod telemetry;
