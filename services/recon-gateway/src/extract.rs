//! What evidence keeps of a payment's request and response: a few named fields, read
//! from JSON that Helcim and integrations write with mixed types (numbers or numeric
//! strings). Nothing else of a body is kept, so card data (`cardData`, card numbers,
//! CVV, expiry, card tokens) never leaves the request.

use recon_money::{Currency, Money};
use serde_json::Value;

use crate::endpoint;

/// Longest `invoiceNumber` / `customerCode` kept; a longer one is not an identifier
/// Helcim would accept, and is dropped rather than stored.
const MAX_REFERENCE_LEN: usize = 128;

/// The request fields matching falls back on when Helcim's answer has no transaction id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFields {
    pub invoice_number: Option<String>,
    pub customer_code: Option<String>,
    /// Exact, in the currency's minor units; only with a currency.
    pub amount_minor: Option<i64>,
    /// Three upper-case letters.
    pub currency: Option<String>,
}

/// Reads the fields of a payment request body (`endpoint` as [`endpoint::classify`]
/// names it). A body that is not a JSON object gives no fields.
pub fn request_fields(endpoint: &str, body: &[u8]) -> RequestFields {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return RequestFields::default();
    };
    let currency = object
        .get("currency")
        .and_then(Value::as_str)
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
    let amount_minor = match (
        object
            .get(endpoint::amount_field(endpoint))
            .and_then(text_of),
        currency.as_deref(),
    ) {
        (Some(amount), Some(code)) => minor_units(&amount, code),
        _ => None,
    };
    RequestFields {
        invoice_number: object.get("invoiceNumber").and_then(reference),
        customer_code: object.get("customerCode").and_then(reference),
        amount_minor,
        currency,
    }
}

/// `transactionId` from Helcim's answer: a whole number, or a string of digits
/// (HelcimPay.js writes numbers as strings). Anything else is no id.
pub fn transaction_id(body: &[u8]) -> Option<i64> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let text = text_of(object.get("transactionId")?)?;
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Helcim's `is-valid-partner-token` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// `1`: the transaction is attributed to the partner.
    Valid,
    /// `0`: it is not.
    Invalid,
    /// No header.
    Absent,
    /// A value that is neither: stored as absent, and warned about.
    Unexpected,
}

impl Validity {
    /// Reads the header's value (`None`: no header).
    pub fn parse(value: Option<&[u8]>) -> Validity {
        match value.map(<[u8]>::trim_ascii) {
            None => Validity::Absent,
            Some(b"1") => Validity::Valid,
            Some(b"0") => Validity::Invalid,
            Some(_) => Validity::Unexpected,
        }
    }

    /// The `is_valid_partner_token` column: 1, 0, or null.
    pub fn column(self) -> Option<i16> {
        match self {
            Validity::Valid => Some(1),
            Validity::Invalid => Some(0),
            Validity::Absent | Validity::Unexpected => None,
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Validity::Valid => "1",
            Validity::Invalid => "0",
            Validity::Absent => "absent",
            Validity::Unexpected => "unexpected",
        }
    }
}

/// A number's exact text (`arbitrary_precision` keeps it), or a string's.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// An identifier as text, when it is one Postgres can hold: a NUL (valid JSON as
/// `\u0000`) would make Postgres refuse the whole record, and with it the evidence of
/// the payment, so such a value is dropped and the rest of the record kept.
fn reference(value: &Value) -> Option<String> {
    text_of(value)
        .filter(|s| !s.is_empty() && s.chars().count() <= MAX_REFERENCE_LEN && !s.contains('\0'))
}

/// Exact minor units: through recon-money for the currencies Helcim processes, and as
/// two-digit minor units for any other three-letter code (kept rather than lost).
fn minor_units(amount: &str, currency: &str) -> Option<i64> {
    match currency.parse::<Currency>() {
        Ok(currency) => Money::parse(amount, currency).ok().map(|m| m.minor_units),
        Err(_) => recon_money::parse_minor_units(amount, 2).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purchase_gives_its_invoice_customer_and_exact_amount() {
        let body = br#"{"ipAddress":"10.0.0.1","currency":"CAD","amount":100.99,
            "invoiceNumber":"INV-1","customerCode":"CST1001",
            "cardData":{"cardNumber":"4124939999999990","cardExpiry":"0128","cardCVV":"100"}}"#;
        assert_eq!(
            request_fields("payment/purchase", body),
            RequestFields {
                invoice_number: Some("INV-1".into()),
                customer_code: Some("CST1001".into()),
                amount_minor: Some(10_099),
                currency: Some("CAD".into()),
            }
        );
    }

    #[test]
    fn amounts_as_strings_and_terminal_amounts_are_read_exactly() {
        let body = br#"{"currency":"usd","amount":"19.9900"}"#;
        let fields = request_fields("payment/preauth", body);
        assert_eq!(
            (fields.amount_minor, fields.currency.as_deref()),
            (Some(1_999), Some("USD"))
        );
        let terminal = br#"{"currency":"CAD","transactionAmount":0.1,"amount":99}"#;
        assert_eq!(
            request_fields("devices/payment/purchase", terminal).amount_minor,
            Some(10)
        );
    }

    #[test]
    fn an_amount_without_a_currency_or_finer_than_cents_is_not_kept() {
        assert_eq!(
            request_fields("payment/purchase", br#"{"amount":5}"#).amount_minor,
            None
        );
        let too_fine = request_fields("payment/purchase", br#"{"amount":1.005,"currency":"CAD"}"#);
        assert_eq!(
            (too_fine.amount_minor, too_fine.currency.as_deref()),
            (None, Some("CAD"))
        );
        let bad_currency = request_fields("payment/purchase", br#"{"amount":5,"currency":"CA"}"#);
        assert_eq!(bad_currency, RequestFields::default());
    }

    #[test]
    fn numeric_references_are_kept_as_text_and_bodies_that_are_not_objects_give_nothing() {
        let fields = request_fields("payment/purchase", br#"{"invoiceNumber":12345}"#);
        assert_eq!(fields.invoice_number.as_deref(), Some("12345"));
        assert_eq!(
            request_fields("payment/purchase", b"[1,2]"),
            RequestFields::default()
        );
        assert_eq!(
            request_fields("payment/purchase", b"not json"),
            RequestFields::default()
        );
        let long = format!(r#"{{"customerCode":"{}"}}"#, "x".repeat(200));
        assert_eq!(
            request_fields("payment/purchase", long.as_bytes()).customer_code,
            None
        );
    }

    #[test]
    fn a_reference_postgres_cannot_hold_is_dropped_and_the_rest_kept() {
        let body = br#"{"invoiceNumber":"INV\u00001","customerCode":"C\u0000","amount":"5.00","currency":"CAD"}"#;
        let fields = request_fields("payment/purchase", body);
        assert_eq!(
            fields,
            RequestFields {
                invoice_number: None,
                customer_code: None,
                amount_minor: Some(500),
                currency: Some("CAD".into()),
            }
        );
    }

    #[test]
    fn a_transaction_id_is_a_number_or_a_numeric_string() {
        assert_eq!(
            transaction_id(br#"{"transactionId":25764674,"status":"APPROVED"}"#),
            Some(25_764_674)
        );
        assert_eq!(transaction_id(br#"{"transactionId":"981"}"#), Some(981));
        assert_eq!(transaction_id(br#"{"transactionId":"98a"}"#), None);
        assert_eq!(transaction_id(br#"{"transactionId":1.5}"#), None);
        assert_eq!(transaction_id(br#"{"transactionId":null}"#), None);
        assert_eq!(transaction_id(br#"{"errors":"Declined"}"#), None);
        assert_eq!(transaction_id(b""), None);
        assert_eq!(
            transaction_id(br#"{"transactionId":99999999999999999999}"#),
            None
        );
    }

    #[test]
    fn the_partner_token_answer_is_one_zero_or_absent() {
        assert_eq!(Validity::parse(Some(b"1")), Validity::Valid);
        assert_eq!(Validity::parse(Some(b" 0 ")), Validity::Invalid);
        assert_eq!(Validity::parse(None), Validity::Absent);
        assert_eq!(Validity::parse(Some(b"true")), Validity::Unexpected);
        assert_eq!(Validity::parse(Some(b"")), Validity::Unexpected);
        assert_eq!(Validity::Unexpected.column(), None);
        assert_eq!(Validity::Valid.column(), Some(1));
        assert_eq!(Validity::Invalid.column(), Some(0));
    }
}
