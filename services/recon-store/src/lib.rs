//! Postgres for helcim-recon: the connection and migrations ([`database`]), accounts
//! and their tokens ([`accounts`]), and the cipher that keeps every token encrypted at
//! rest ([`crypto`]).

pub mod accounts;
pub mod api_keys;
pub mod attribution;
pub mod connected;
pub mod crypto;
pub mod database;
pub mod evidence;
pub mod intake;
pub mod keys;
pub mod lookup;
pub mod receipts;
pub mod reconciliation;
pub mod testing;

pub use accounts::{AccountStore, AccountSummary, PartnerTokenSource, StoreError};
pub use crypto::{MasterKey, Purpose, SecretCipher};
