//! Attribution over the API: receipts from integrations that call Helcim directly
//! ([`receipts`], with its rules in [`receipt_rules`]); the gaps, listed and worked
//! ([`gaps`]); the month report and its post-close notes ([`report`]). Query strings
//! are read by [`params`], gaps worded as JSON by [`views`].

pub mod duplicate_keys;
pub mod gaps;
pub mod params;
pub mod receipt_rules;
pub mod receipts;
pub mod report;
pub mod views;
