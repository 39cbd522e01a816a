//! Attribution evidence reported to the API: receipts from integrations that call
//! Helcim directly ([`receipts`], with its rules in [`receipt_rules`]).

pub mod duplicate_keys;
pub mod receipt_rules;
pub mod receipts;
