//! HelcimPay.js checkouts: made by `POST /v2/helcim-pay/initialize`, completed by the
//! shopper's browser (here `POST /sim/helcim-pay/{checkoutToken}/complete`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::MadeBy;
use crate::activity::Kind;

/// One checkout session.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkout {
    pub account_id: String,
    pub checkout_token: String,
    /// Only the initialize answer shows it (the merchant checks the browser's result
    /// with it).
    #[serde(skip)]
    pub secret_token: String,
    pub payment_type: Kind,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub invoice_number: String,
    pub customer_code: String,
    pub created_at: DateTime<Utc>,
    /// The initialize request: a checkout's transaction is attributed by it.
    pub made_by: MadeBy,
    /// Set once completed.
    pub transaction_id: Option<u64>,
}
