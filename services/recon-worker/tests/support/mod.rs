//! Shared by the attribution tests.

pub mod ledger;
pub mod seed;
pub mod subscriber;
