//! What the attribution tests send and read: receipts, Payment API bodies,
//! idempotency keys, transaction ids and decimal amounts.

use chrono::Utc;
use rand::Rng;
use serde_json::{Value, json};

/// Helcim's Visa test card.
const VISA: &str = "4124939999999990";

/// A receipt as `POST /v1/attribution/receipts` takes it: one approved payment an
/// integration made directly, seen now.
pub struct Receipt(Value);

impl Receipt {
    /// A receipt that a valid partner token was sent and accepted (`1`).
    pub fn new(id: &str, account: &str, amount: &str, currency: &str) -> Receipt {
        Receipt(json!({
            "receiptId": id, "accountId": account, "amount": amount, "currency": currency,
            "partnerTokenSent": true, "isValidPartnerToken": 1,
            "observedAt": Utc::now().to_rfc3339(),
        }))
    }

    pub fn transaction(mut self, id: i64) -> Receipt {
        self.0["transactionId"] = json!(id);
        self
    }

    pub fn invoice(mut self, invoice: &str) -> Receipt {
        self.0["invoiceNumber"] = json!(invoice);
        self
    }

    /// What the integration saw of the partner token.
    pub fn token(mut self, sent: bool, valid: Option<u8>) -> Receipt {
        self.0["partnerTokenSent"] = json!(sent);
        self.0["isValidPartnerToken"] = json!(valid);
        self
    }

    pub fn json(self) -> Value {
        self.0
    }
}

pub fn purchase(amount: &str, currency: &str, invoice: &str) -> Value {
    json!({
        "ipAddress": "192.168.1.1", "currency": currency, "amount": amount,
        "invoiceNumber": invoice, "customerCode": "CST-ATTR",
        "cardData": {"cardNumber": VISA, "cardExpiry": "0130", "cardCVV": "100"}
    })
}

/// An idempotency key of Helcim's shape (25–36 characters), unique per call.
pub fn fresh_key(tag: &str) -> String {
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(8)
        .collect();
    format!("{tag}-{:032x}", rand::rng().random::<u128>())[..34].to_string()
}

/// The transaction id in an answer (a number or a numeric string).
pub fn id_of(answer: &Value) -> i64 {
    match &answer["transactionId"] {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("no transactionId in {answer} ({other})"),
    }
}

/// `"12.34"` → 1234.
pub fn minor(amount: &Value) -> i64 {
    let text = amount
        .as_str()
        .unwrap_or_else(|| panic!("an amount: {amount}"));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "00"));
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    let whole: i64 = whole.trim_start_matches('-').parse().unwrap();
    let fraction: i64 = format!("{fraction:0<2}")[..2].parse().unwrap();
    sign * (whole * 100 + fraction)
}
