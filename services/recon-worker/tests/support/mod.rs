//! Shared by the attribution tests.

pub mod alerts;
pub mod ledger;
pub mod seed;
pub mod subscriber;
