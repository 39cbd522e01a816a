//! A typed client for the parts of the Helcim v2 API that reconciliation reads:
//! card transactions, card batches and the connection test.
//!
//! Helcim's JSON is loose: numbers arrive as numbers or numeric strings, `status` is
//! `APPROVED` or `APPROVAL`, times are Mountain Time without an offset, an open batch
//! closes at `"0000-00-00 00:00:00"`, and errors come in four body shapes. This crate
//! reads all of it without loss:
//!
//! - money is parsed exactly into integer minor units ([`money`]), never `f64`;
//! - times are converted once, here, to UTC ([`mountain_time`]);
//! - every typed value keeps the raw JSON it came from (`raw`), and an answer that does
//!   not read comes back as [`HelcimError::Unreadable`] with its exact body, so the
//!   caller can keep it;
//! - single-object calls say when their request was sent ([`Fetched`]), so a store can
//!   refuse to replace a newer answer with an older one;
//! - requests stay within the account's limits ([`limits`]) and back off on 429/5xx
//!   ([`retry`]);
//! - the API token is a secret ([`ApiToken`]) that never reaches a log or `Debug`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), helcim_client::HelcimError> {
//! use helcim_client::{ApiToken, ClientConfig, HelcimClient, TransactionQuery};
//! let token = ApiToken::new(std::env::var("HELCIM_API_TOKEN").unwrap_or_default())?;
//! let client = HelcimClient::new(ClientConfig::new("https://api.helcim.com/v2", token)?)?;
//! client.connection_test().await?;
//! let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
//! let listing = client.card_transactions(&TransactionQuery::dates(day, day)).await?;
//! println!("{} transactions", listing.items.len());
//! # Ok(()) }
//! ```

pub mod api_error;
pub mod client;
pub mod error;
pub mod fetched;
pub mod limits;
pub mod model;
/// Exact money (the `recon-money` crate, shared with the read API).
pub use recon_money as money;
pub mod mountain_time;
pub mod query;
pub mod retry;
mod token;
mod wire;

pub use api_error::{ApiErrorItem, ApiErrors};
pub use client::{ClientConfig, HelcimClient, Listing, Unreadable};
pub use error::HelcimError;
pub use fetched::{Fetched, RawAnswer};
pub use limits::{AccountLimiter, AccountLimits};
pub use model::{
    BatchStats, CardBatch, CardBatchId, CardTransaction, TransactionId, TransactionStatus,
    TransactionType,
};
pub use money::{Currency, Money};
pub use query::{BatchQuery, TransactionQuery};
pub use retry::RetryPolicy;
pub use token::ApiToken;
