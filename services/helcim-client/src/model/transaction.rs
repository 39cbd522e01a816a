use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FieldError, optional_whole_number, required, whole_number};
use crate::model::CardBatchId;
use crate::money::{Currency, Money};
use crate::mountain_time;
use crate::wire::{WireTransaction, text};

/// Helcim's card transaction id (`transactionId`; a string in webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TransactionId(pub u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for TransactionId {
    type Err = FieldError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        whole_number("transactionId", &crate::wire::Scalar(text.to_string())).map(TransactionId)
    }
}

/// `APPROVED` (also written `APPROVAL`) or `DECLINED`. Anything else is kept verbatim so
/// reconciliation can flag it instead of guessing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransactionStatus {
    Approved,
    Declined,
    Unrecognized(String),
}

impl TransactionStatus {
    pub fn parse(text: &str) -> Self {
        match text.trim().to_ascii_uppercase().as_str() {
            "APPROVED" | "APPROVAL" => TransactionStatus::Approved,
            "DECLINED" => TransactionStatus::Declined,
            _ => TransactionStatus::Unrecognized(text.to_string()),
        }
    }

    /// The canonical upper-case name.
    pub fn as_str(&self) -> &str {
        match self {
            TransactionStatus::Approved => "APPROVED",
            TransactionStatus::Declined => "DECLINED",
            TransactionStatus::Unrecognized(text) => text,
        }
    }
}

/// What kind of card transaction this is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransactionType {
    Purchase,
    Preauth,
    Verify,
    Capture,
    Refund,
    Reverse,
    Unrecognized(String),
}

impl TransactionType {
    pub fn parse(text: &str) -> Self {
        match text.trim().to_ascii_lowercase().as_str() {
            "purchase" => TransactionType::Purchase,
            "preauth" => TransactionType::Preauth,
            "verify" => TransactionType::Verify,
            "capture" => TransactionType::Capture,
            "refund" => TransactionType::Refund,
            "reverse" => TransactionType::Reverse,
            _ => TransactionType::Unrecognized(text.to_string()),
        }
    }

    /// The canonical lower-case name Helcim uses.
    pub fn as_str(&self) -> &str {
        match self {
            TransactionType::Purchase => "purchase",
            TransactionType::Preauth => "preauth",
            TransactionType::Verify => "verify",
            TransactionType::Capture => "capture",
            TransactionType::Refund => "refund",
            TransactionType::Reverse => "reverse",
            TransactionType::Unrecognized(text) => text,
        }
    }
}

/// A card transaction as Helcim's API reports it, with the JSON it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct CardTransaction {
    pub id: TransactionId,
    /// `dateCreated`, converted from Mountain Time (see [`mountain_time`]).
    pub created_at: DateTime<Utc>,
    pub card_batch_id: Option<CardBatchId>,
    pub status: TransactionStatus,
    pub transaction_type: TransactionType,
    pub amount: Money,
    pub user: Option<String>,
    pub avs_response: Option<String>,
    pub cvv_response: Option<String>,
    pub card_type: Option<String>,
    pub approval_code: Option<String>,
    pub card_token: Option<String>,
    /// First six and last four digits, as Helcim masks it.
    pub card_number: Option<String>,
    pub card_holder_name: Option<String>,
    pub customer_code: Option<String>,
    pub invoice_number: Option<String>,
    pub warning: Option<String>,
    /// The object exactly as received.
    pub raw: Value,
}

impl CardTransaction {
    /// Reads one transaction object from Helcim's JSON, keeping the JSON.
    pub fn from_json(raw: Value) -> Result<Self, FieldError> {
        let wire: WireTransaction =
            serde_json::from_value(raw.clone()).map_err(|e| FieldError::new("(object)", e))?;
        let currency: Currency = required("currency", &wire.currency)?
            .parse()
            .map_err(|e| FieldError::new("currency", e))?;
        let amount = Money::parse(required("amount", &wire.amount)?, currency)
            .map_err(|e| FieldError::new("amount", e))?;
        let created_at = mountain_time::parse(required("dateCreated", &wire.date_created)?)
            .map_err(|e| FieldError::new("dateCreated", e))?;
        Ok(CardTransaction {
            id: TransactionId(whole_number("transactionId", &wire.transaction_id)?),
            created_at,
            card_batch_id: optional_whole_number("cardBatchId", &wire.card_batch_id)?
                .map(CardBatchId),
            status: TransactionStatus::parse(required("status", &wire.status)?),
            transaction_type: TransactionType::parse(required("type", &wire.kind)?),
            amount,
            user: text(&wire.user),
            avs_response: text(&wire.avs_response),
            cvv_response: text(&wire.cvv_response),
            card_type: text(&wire.card_type),
            approval_code: text(&wire.approval_code),
            card_token: text(&wire.card_token),
            card_number: text(&wire.card_number),
            card_holder_name: text(&wire.card_holder_name),
            customer_code: text(&wire.customer_code),
            invoice_number: text(&wire.invoice_number),
            warning: text(&wire.warning),
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<CardTransaction, FieldError> {
        CardTransaction::from_json(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn the_documented_shape_reads_exactly() {
        let tx = read(
            r#"{"transactionId":25764674,"dateCreated":"2026-01-14 11:38:18","cardBatchId":3121,
            "status":"APPROVED","type":"purchase","amount":100.9900,"currency":"CAD",
            "cardType":"VI","cardNumber":"4124939990","approvalCode":"T3E5ST"}"#,
        )
        .unwrap();
        assert_eq!(tx.id, TransactionId(25764674));
        assert_eq!(tx.amount, Money::new(10099, Currency::Cad));
        assert_eq!(tx.card_batch_id, Some(CardBatchId(3121)));
        assert_eq!(tx.status, TransactionStatus::Approved);
        assert_eq!(tx.created_at.to_rfc3339(), "2026-01-14T18:38:18+00:00");
        assert_eq!(tx.raw["amount"].to_string(), "100.9900");
    }

    #[test]
    fn helcim_pay_js_strings_read_the_same_as_numbers() {
        let tx = read(
            r#"{"transactionId":"25764674","dateCreated":"2026-01-14 11:38:18","cardBatchId":"3121",
            "status":"APPROVAL","type":"refund","amount":"19.99","currency":"usd","warning":""}"#,
        )
        .unwrap();
        assert_eq!(tx.id, TransactionId(25764674));
        assert_eq!(tx.amount, Money::new(1999, Currency::Usd));
        assert_eq!(tx.status, TransactionStatus::Approved);
        assert_eq!(tx.transaction_type, TransactionType::Refund);
        assert_eq!(tx.warning, None);
    }

    #[test]
    fn unknown_statuses_and_types_are_kept_not_guessed() {
        let tx = read(
            r#"{"transactionId":1,"dateCreated":"2026-01-14 11:38:18","status":"HELD",
            "type":"withdraw","amount":1,"currency":"CAD"}"#,
        )
        .unwrap();
        assert_eq!(tx.status, TransactionStatus::Unrecognized("HELD".into()));
        assert_eq!(
            tx.transaction_type,
            TransactionType::Unrecognized("withdraw".into())
        );
    }

    #[test]
    fn a_bad_field_is_named_in_the_error() {
        let err = read(
            r#"{"transactionId":1,"dateCreated":"2026-01-14 11:38:18","status":"APPROVED",
            "type":"purchase","amount":"12.345","currency":"CAD"}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "amount");
        let err = read(r#"{"transactionId":1}"#).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
