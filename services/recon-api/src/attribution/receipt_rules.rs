//! What a receipts batch must look like (`POST /v1/attribution/receipts`): pure, so
//! every rule is tested without a server. Each bad item gets one reason listing all
//! its faults; the caller fixes them in one round.
//!
//! Decisions (documented in `docs/api.md`):
//! - unknown fields are refused, in the batch and in items: a misspelt
//!   `isValidPartnerTokn` silently dropped would store a receipt that says less than
//!   the caller meant;
//! - `partnerTokenSent: false` with `isValidPartnerToken: 1` is a contradiction (Helcim
//!   cannot have accepted a token that was not sent) and is refused;
//! - `observedAt` more than [`FUTURE_TOLERANCE`] ahead of the server's clock is refused;
//!   finer than a microsecond it is truncated (Postgres keeps microseconds);
//! - the same `receiptId` twice for one account in one batch: the later items are
//!   refused, naming the first;
//! - `amount` is a plain decimal string, greater than zero, with at most the currency's
//!   decimals (`"10.5"` and `"10.50"` are fine, `"10.500"`, `"1e1"` and `10.5` are not).

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use recon_money::{Currency, parse_minor_units};
use recon_store::receipts::Receipt;
use serde_json::{Map, Value};

/// The most receipts in one batch.
pub const MAX_RECEIPTS: usize = 1_000;
/// The largest body read (a full batch of long items is well under half of it).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// How far ahead of the server's clock `observedAt` may be (clocks drift).
pub const FUTURE_TOLERANCE: TimeDelta = TimeDelta::minutes(5);
/// The longest `receiptId`.
pub const MAX_RECEIPT_ID: usize = 128;
/// The longest `invoiceNumber`, in characters.
pub const MAX_INVOICE_NUMBER: usize = 255;

const FIELDS: &[&str] = &[
    "receiptId",
    "accountId",
    "transactionId",
    "invoiceNumber",
    "amount",
    "currency",
    "partnerTokenSent",
    "isValidPartnerToken",
    "observedAt",
];

/// Why a whole body was refused before its items were looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Not JSON at all (400).
    NotJson(String),
    /// JSON, but not `{"receipts": [...]}` (422).
    NotABatch(String),
    /// `receipts` is empty (422).
    Empty,
    /// More than [`MAX_RECEIPTS`] (413).
    TooMany(usize),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::NotJson(detail) => write!(
                f,
                "the body is not JSON ({detail}); send {{\"receipts\": [...]}}"
            ),
            BatchError::NotABatch(detail) => {
                write!(f, "{detail}; send {{\"receipts\": [...]}}")
            }
            BatchError::Empty => {
                f.write_str("`receipts` is empty; send between 1 and 1000 receipts")
            }
            BatchError::TooMany(n) => write!(
                f,
                "{n} receipts in one batch; at most {MAX_RECEIPTS}: split it into batches of \
                 at most {MAX_RECEIPTS} (each is idempotent, so resending one is safe)"
            ),
        }
    }
}

/// A refused item: its position (from 0), its `receiptId` when it had a usable one,
/// and everything wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub index: usize,
    pub receipt_id: Option<String>,
    pub reason: String,
}

/// A batch whose envelope was fine: the good receipts (with their positions) and the
/// refused items, both in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub receipts: Vec<(usize, Receipt)>,
    pub errors: Vec<ItemError>,
    /// Every `accountId` named by a string, valid item or not, first appearance first:
    /// the key must cover all of them (a 404 otherwise, whatever else is wrong).
    pub accounts: Vec<String>,
}

/// Whether `content_type` is JSON (`application/json`, parameters allowed).
pub fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Checks a body against the rules above, as of `now`.
pub fn check(body: &[u8], now: DateTime<Utc>) -> Result<Checked, BatchError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BatchError::NotJson(e.to_string()))?;
    let Value::Object(mut envelope) = value else {
        return Err(BatchError::NotABatch(
            "the body is not a JSON object".into(),
        ));
    };
    let Some(receipts) = envelope.remove("receipts") else {
        return Err(BatchError::NotABatch("the body has no `receipts`".into()));
    };
    if !envelope.is_empty() {
        return Err(BatchError::NotABatch(format!(
            "unknown field {} beside `receipts`",
            names(envelope.keys())
        )));
    }
    let Value::Array(items) = receipts else {
        return Err(BatchError::NotABatch("`receipts` is not an array".into()));
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    if items.len() > MAX_RECEIPTS {
        return Err(BatchError::TooMany(items.len()));
    }
    let mut checked = Checked::default();
    // (account, receiptId) → index of its first appearance.
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        if let Some(account) = item.get("accountId").and_then(Value::as_str)
            && !checked.accounts.iter().any(|a| a == account)
        {
            checked.accounts.push(account.to_string());
        }
        match check_item(item, now) {
            Ok(receipt) => {
                let key = (receipt.account_id.clone(), receipt.receipt_id.clone());
                if let Some(first) = seen.get(&key) {
                    checked.errors.push(ItemError {
                        index,
                        receipt_id: Some(receipt.receipt_id),
                        reason: format!(
                            "receiptId already appears at index {first} for this account in \
                             this batch; send each receipt once"
                        ),
                    });
                } else {
                    seen.insert(key, index);
                    checked.receipts.push((index, receipt));
                }
            }
            Err(faults) => checked.errors.push(ItemError {
                index,
                receipt_id: item
                    .get("receiptId")
                    .and_then(Value::as_str)
                    .filter(|id| receipt_id_fault(id).is_none())
                    .map(str::to_string),
                reason: faults.join("; "),
            }),
        }
    }
    Ok(checked)
}

/// One item, or every fault it has.
pub fn check_item(item: &Value, now: DateTime<Utc>) -> Result<Receipt, Vec<String>> {
    let Value::Object(fields) = item else {
        return Err(vec!["a receipt must be a JSON object".into()]);
    };
    let mut faults = Vec::new();
    let unknown: Vec<&String> = fields
        .keys()
        .filter(|k| !FIELDS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        faults.push(format!(
            "unknown field {} (a receipt has {})",
            names(unknown.into_iter()),
            FIELDS.join(", ")
        ));
    }
    let receipt_id = keep(&mut faults, receipt_id(fields));
    let account_id = keep(&mut faults, account_id(fields));
    let transaction_id = keep(&mut faults, transaction_id(fields));
    let invoice_number = keep(&mut faults, invoice_number(fields));
    let currency = keep(&mut faults, currency(fields));
    let amount_minor = match currency {
        Some(currency) => keep(&mut faults, amount(fields, currency)),
        // Still say what is wrong with the amount itself.
        None => keep(&mut faults, amount(fields, Currency::Cad)).and(None),
    };
    let partner_token_sent = keep(&mut faults, required_bool(fields, "partnerTokenSent"));
    let is_valid = keep(&mut faults, is_valid_partner_token(fields));
    let observed_at = keep(&mut faults, observed_at(fields, now));
    if let (Some(None), Some(None)) = (&transaction_id, &invoice_number) {
        faults.push(
            "neither transactionId nor invoiceNumber: a receipt without one of them can never \
             be matched to a transaction; send the transactionId Helcim answered, or the \
             invoiceNumber sent"
                .into(),
        );
    }
    if partner_token_sent == Some(false) && is_valid == Some(Some(1)) {
        faults.push(
            "partnerTokenSent is false but isValidPartnerToken is 1: Helcim cannot accept a \
             token that was not sent; report what the request and the response carried"
                .into(),
        );
    }
    match (
        receipt_id,
        account_id,
        transaction_id,
        invoice_number,
        currency,
        amount_minor,
        partner_token_sent,
        is_valid,
        observed_at,
    ) {
        (
            Some(receipt_id),
            Some(account_id),
            Some(transaction_id),
            Some(invoice_number),
            Some(currency),
            Some(amount_minor),
            Some(partner_token_sent),
            Some(is_valid_partner_token),
            Some(observed_at),
        ) if faults.is_empty() => Ok(Receipt {
            account_id,
            receipt_id,
            transaction_id,
            invoice_number,
            amount_minor,
            currency: currency.code().to_string(),
            partner_token_sent,
            is_valid_partner_token,
            observed_at,
        }),
        _ => Err(faults),
    }
}

/// The value, or `None` with its fault noted.
fn keep<T>(faults: &mut Vec<String>, result: Result<T, String>) -> Option<T> {
    result.map_err(|fault| faults.push(fault)).ok()
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    keys.map(|k| format!("`{}`", shorten(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most 64 characters of something the caller sent, for a reason.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn required_string<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Err(format!("{name} is required")),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

fn receipt_id_fault(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > MAX_RECEIPT_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        Some(format!(
            "receiptId must be 1 to {MAX_RECEIPT_ID} printable ASCII characters without spaces"
        ))
    } else {
        None
    }
}

fn receipt_id(fields: &Map<String, Value>) -> Result<String, String> {
    let id = required_string(fields, "receiptId")?;
    match receipt_id_fault(id) {
        Some(fault) => Err(fault),
        None => Ok(id.to_string()),
    }
}

/// Any string: whether it names an account the key covers is the handler's 404, so
/// that a malformed id answers exactly as an unknown one.
fn account_id(fields: &Map<String, Value>) -> Result<String, String> {
    required_string(fields, "accountId").map(str::to_string)
}

fn transaction_id(fields: &Map<String, Value>) -> Result<Option<i64>, String> {
    const FAULT: &str = "transactionId must be a positive whole number, or a string of digits";
    let id = match fields.get("transactionId") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(text))
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            text.parse::<i64>().ok()
        }
        Some(_) => None,
    };
    match id {
        Some(id) if id > 0 => Ok(Some(id)),
        _ => Err(FAULT.into()),
    }
}

fn invoice_number(fields: &Map<String, Value>) -> Result<Option<String>, String> {
    match fields.get("invoiceNumber") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text))
            if !text.is_empty()
                && text.chars().count() <= MAX_INVOICE_NUMBER
                && !text.chars().any(char::is_control) =>
        {
            Ok(Some(text.clone()))
        }
        Some(_) => Err(format!(
            "invoiceNumber must be a string of 1 to {MAX_INVOICE_NUMBER} characters without \
             control characters, or absent"
        )),
    }
}

fn currency(fields: &Map<String, Value>) -> Result<Currency, String> {
    let code = required_string(fields, "currency")?;
    match code.parse::<Currency>() {
        Ok(currency) if currency.code() == code => Ok(currency),
        _ => Err(format!(
            "currency {:?} is not one Helcim processes: send \"CAD\" or \"USD\"",
            shorten(code)
        )),
    }
}

fn amount(fields: &Map<String, Value>, currency: Currency) -> Result<i64, String> {
    let digits = currency.minor_digits();
    let text = match fields.get("amount") {
        None | Some(Value::Null) => return Err("amount is required".into()),
        Some(Value::String(text)) => text,
        Some(_) => {
            return Err("amount must be a decimal string (e.g. \"12.50\"), so it is exact".into());
        }
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let plain = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (!text.contains('.') || !fraction.is_empty())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !plain {
        return Err(format!(
            "amount {:?} is not a plain decimal like \"12.50\" (digits, then an optional \
             point and up to {digits} decimals; no sign, no exponent)",
            shorten(text)
        ));
    }
    if fraction.len() > digits as usize {
        return Err(format!(
            "amount {:?} has {} decimals; {} has {digits}",
            shorten(text),
            fraction.len(),
            currency.code()
        ));
    }
    match parse_minor_units(text, digits) {
        Ok(0) => {
            Err("amount must be greater than zero: a receipt stands for an approved payment".into())
        }
        Ok(minor) => Ok(minor),
        Err(error) => Err(error.to_string()),
    }
}

fn required_bool(fields: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match fields.get(name) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Err(format!("{name} is required (true or false)")),
        Some(_) => Err(format!("{name} must be true or false")),
    }
}

/// Required, but may be `null`: a missing field more likely means an integration that
/// forgot it than one that saw no header.
fn is_valid_partner_token(fields: &Map<String, Value>) -> Result<Option<i16>, String> {
    const FAULT: &str = "isValidPartnerToken must be 1 or 0 (Helcim's is-valid-partner-token \
                         header), or null when the response had no such header";
    match fields.get("isValidPartnerToken") {
        None => Err(format!("isValidPartnerToken is required: {FAULT}")),
        Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(1) => Ok(Some(1)),
            Some(0) => Ok(Some(0)),
            _ => Err(FAULT.into()),
        },
        Some(_) => Err(FAULT.into()),
    }
}

fn observed_at(fields: &Map<String, Value>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = required_string(fields, "observedAt")?;
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            format!(
                "observedAt {:?} is not an RFC 3339 time (e.g. \"2026-11-01T10:00:00-06:00\")",
                shorten(text)
            )
        })?
        .with_timezone(&Utc)
        .trunc_subsecs(6);
    if at > now + FUTURE_TOLERANCE {
        return Err(format!(
            "observedAt {text:?} is in the future (more than {} minutes ahead of this server's \
             clock, {}); send when the response was received",
            FUTURE_TOLERANCE.num_minutes(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests;
