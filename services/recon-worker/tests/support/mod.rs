//! Shared by the attribution tests.

pub mod seed;
