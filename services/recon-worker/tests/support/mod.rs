//! Shared by the attribution tests.

pub mod seed;
pub mod subscriber;
