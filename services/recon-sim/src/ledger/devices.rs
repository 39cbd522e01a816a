//! Smart Terminal devices in API mode: each account has one listening device on its
//! first terminal and one that is offline (for "Device Not Listening"). A device with a
//! payment request on its screen is not listening either until the request ends.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};

use super::MadeBy;
use crate::activity::{Account, Kind};

/// One Smart Terminal.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub account_id: String,
    pub id: u64,
    /// What the device shows on screen and the API addresses it by, e.g. `NBL7`.
    pub code: String,
    pub name: String,
    pub listening: bool,
    pub terminal_id: String,
    pub currency: &'static str,
    /// The payment request on its screen, if any.
    pub pending: Option<PendingTerminalPayment>,
}

/// A payment request sent to a device, waiting for the customer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTerminalPayment {
    /// Tells this request from a later one on the same device (for the timer).
    pub serial: u64,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub invoice_number: String,
    pub customer_code: String,
    pub requested_at: DateTime<Utc>,
    pub made_by: MadeBy,
}

impl Device {
    /// A listening device on the account's first terminal and an offline one.
    pub(super) fn for_account(account: &Account, rng: &mut ChaCha8Rng) -> Vec<Device> {
        let Some(terminal) = account.terminals.first() else {
            return Vec::new();
        };
        (0..2)
            .map(|n| Device {
                account_id: account.account_id.clone(),
                id: rng.random_range(10_000..100_000),
                code: crate::generate::code(rng, 4),
                name: format!("Smart Terminal {}", n + 1),
                listening: n == 0,
                terminal_id: terminal.terminal_id.clone(),
                currency: terminal.currency,
                pending: None,
            })
            .collect()
    }

    /// As `GET /v2/devices` lists it.
    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "status": if self.listening && self.pending.is_none() { "LISTENING" } else if self.listening { "BUSY" } else { "OFFLINE" },
            "terminalId": self.terminal_id,
            "currency": self.currency,
        })
    }
}
