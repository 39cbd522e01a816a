//! Attribution evidence reported to the API: receipts from integrations that call
//! Helcim directly ([`receipts`], with its rules in [`receipt_rules`]).

pub mod receipt_rules;
pub mod receipts;
