//! Reading a payment request's JSON body as Helcim does: amounts as numbers or numeric
//! strings (exact, never through `f64`), the currency, card data; every refusal names
//! its field. And the simulator's decline rules:
//!
//! - a card number with a CVV of 200 or more is declined, as on Helcim's test accounts
//!   (200 is a CVV2 mismatch, 201 pick up card, ...);
//! - any amount ending in `.05` is declined (card tokens, captures, refunds, Smart
//!   Terminal and HelcimPay.js payments included).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::gate::Answer;
use crate::ledger::CardOnFile;

/// Amounts whose cents are this are declined.
pub const DECLINE_CENTS: i64 = 5;

/// The decline message for an amount the rule declines.
pub fn decline_for_amount(amount_minor: i64) -> Option<&'static str> {
    (amount_minor.rem_euclid(100) == DECLINE_CENTS)
        .then_some("Transaction Declined: DECLINE - Do not honour")
}

/// Helcim's test-account decline for a CVV of 200 or more.
fn decline_for_cvv(cvv: &str) -> Option<&'static str> {
    let code: u32 = cvv.parse().ok()?;
    Some(match code {
        0..200 => return None,
        200 => "Transaction Declined: DECLINE CVV2 - Do not honor due to CVV2 mismatch\\failure",
        201 => "Transaction Declined: PICK UP CARD - Pick up card",
        202 => "Transaction Declined: AMOUNT ERROR - Tran Amount Error",
        203 => {
            "Transaction Declined: AMT OVER SVC LMT - Amount is more than established service limit"
        }
        _ => "Transaction Declined: DECLINE - Do not honour",
    })
}

/// A JSON request body and the refusals found so far. Its Debug output names the
/// fields only: a payment body holds card data.
pub(super) struct Body {
    fields: Map<String, Value>,
    errors: Map<String, Value>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("errors", &self.errors)
            .finish()
    }
}

/// The card a payment names (Debug shows which kind, no card data).
pub(super) enum CardInput {
    Token(String),
    /// Checked and already masked; the full number goes no further.
    Number {
        card: CardOnFile,
        cvv: String,
    },
}

impl std::fmt::Debug for CardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CardInput::Token(_) => "CardInput::Token(..)",
            CardInput::Number { .. } => "CardInput::Number { .. }",
        })
    }
}

impl CardInput {
    /// The decline Helcim's test rules give this card, if any.
    pub fn decline(&self) -> Option<&'static str> {
        match self {
            CardInput::Token(_) => None,
            CardInput::Number { cvv, .. } => decline_for_cvv(cvv),
        }
    }
}

impl Body {
    /// Parses the body; anything but a JSON object is a 400.
    pub fn parse(bytes: &[u8]) -> Result<Self, Answer> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(fields)) => Ok(Body {
                fields,
                errors: Map::new(),
            }),
            Ok(_) => Err(Answer::json(
                400,
                &json!({"errors": "The request body must be a JSON object"}),
            )),
            Err(e) => Err(Answer::json(
                400,
                &json!({"errors": format!("The request body is not valid JSON: {e}")}),
            )),
        }
    }

    pub fn refuse(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_string())
            .or_insert_with(|| Value::String(message.into()));
    }

    /// 400 `{"errors": {field: message, ...}}` if anything was refused.
    pub fn finish(self) -> Result<(), Answer> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Answer::json(400, &json!({"errors": self.errors})))
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// A string or number field as text; empty counts as absent.
    pub fn text(&self, name: &str) -> Option<String> {
        text_of(self.fields.get(name)?)
    }

    pub fn require_text(&mut self, name: &str) -> Option<String> {
        let value = self.text(name);
        if value.is_none() {
            self.refuse(name, format!("{name} is required"));
        }
        value
    }

    /// A currency Helcim processes.
    pub fn currency(&mut self, name: &str) -> Option<&'static str> {
        let text = self.require_text(name)?;
        match text.parse::<recon_money::Currency>() {
            Ok(currency) => Some(currency.code()),
            Err(_) => {
                self.refuse(
                    name,
                    format!("{text:?} is not a currency Helcim processes (CAD or USD)"),
                );
                None
            }
        }
    }

    /// An amount in cents, exact: a number or numeric string with at most two
    /// decimals, more than zero.
    pub fn amount(&mut self, name: &str, required: bool) -> Option<i64> {
        let Some(text) = self.text(name) else {
            if required {
                self.refuse(name, format!("{name} is required"));
            }
            return None;
        };
        match recon_money::parse_minor_units(&text, 2) {
            Ok(cents) if cents > 0 => Some(cents),
            Ok(_) => {
                self.refuse(name, format!("{name} must be more than 0"));
                None
            }
            Err(e) => {
                self.refuse(name, format!("{name} is not a valid amount: {e}"));
                None
            }
        }
    }

    /// A whole-number id.
    pub fn id(&mut self, name: &str) -> Option<u64> {
        let text = self.require_text(name)?;
        match text.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                self.refuse(name, format!("{name} must be a whole number"));
                None
            }
        }
    }

    /// `cardData`: a `cardToken`, or `cardNumber` + `cardExpiry` (MMYY) + `cardCVV`.
    pub fn card(&mut self, account_id: &str, seed: u64) -> Option<CardInput> {
        let Some(data) = self
            .fields
            .get("cardData")
            .and_then(Value::as_object)
            .cloned()
        else {
            self.refuse(
                "cardData",
                "cardData is required: a cardToken, or cardNumber, cardExpiry and cardCVV",
            );
            return None;
        };
        let field = |name: &str| data.get(name).and_then(text_of);
        if let Some(token) = field("cardToken") {
            return Some(CardInput::Token(token));
        }
        let (number, expiry, cvv) = (field("cardNumber"), field("cardExpiry"), field("cardCVV"));
        let Some(number) = number else {
            self.refuse(
                "cardData",
                "cardData needs a cardToken, or cardNumber, cardExpiry and cardCVV",
            );
            return None;
        };
        let digits = number.len();
        if !(12..=19).contains(&digits)
            || !number.bytes().all(|b| b.is_ascii_digit())
            || !luhn(&number)
        {
            self.refuse("cardData.cardNumber", "Invalid card number");
        }
        match expiry {
            Some(expiry) if valid_expiry(&expiry) => {}
            Some(_) => self.refuse(
                "cardData.cardExpiry",
                "cardExpiry must be MMYY and not in the past",
            ),
            None => self.refuse(
                "cardData.cardExpiry",
                "cardExpiry is required with a cardNumber",
            ),
        }
        let cvv = match cvv {
            Some(cvv)
                if (3..=4).contains(&cvv.len()) && cvv.bytes().all(|b| b.is_ascii_digit()) =>
            {
                cvv
            }
            Some(_) => {
                self.refuse("cardData.cardCVV", "cardCVV must be 3 or 4 digits");
                return None;
            }
            None => {
                self.refuse("cardData.cardCVV", "cardCVV is required with a cardNumber");
                return None;
            }
        };
        if self.has_errors() {
            return None;
        }
        let holder = data
            .get("cardHolderName")
            .and_then(text_of)
            .or_else(|| self.text("cardHolderName"))
            .unwrap_or_default();
        Some(CardInput::Number {
            card: card_on_file(account_id, &number, holder, seed),
            cvv,
        })
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn luhn(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// MMYY, not before this month.
fn valid_expiry(expiry: &str) -> bool {
    if expiry.len() != 4 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (month, year): (u32, i32) = (
        expiry[..2].parse().unwrap_or(0),
        expiry[2..].parse().unwrap_or(0),
    );
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    (1..=12).contains(&month) && (2000 + year, month) >= (today.year(), today.month())
}

/// The card as the ledger keeps it: type from the number's prefix, first six and
/// last four digits, and a token that is the same for the same card on one account
/// (derived, so it reveals nothing of the number).
pub(crate) fn card_on_file(
    account_id: &str,
    number: &str,
    holder: String,
    seed: u64,
) -> CardOnFile {
    let card_type = match number.as_bytes() {
        [b'4', ..] => "VI",
        [b'3', b'4' | b'7', ..] => "AX",
        [b'5', b'1'..=b'5', ..] | [b'2', ..] => "MC",
        [b'6', ..] => "DI",
        _ => "VI",
    };
    let digest = Sha256::new()
        .chain_update(seed.to_be_bytes())
        .chain_update(account_id.as_bytes())
        .chain_update(number.as_bytes())
        .finalize();
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    let token = digest
        .iter()
        .take(23)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    CardOnFile {
        card_type,
        masked: format!("{}{}", &number[..6], &number[number.len() - 4..]),
        token,
        holder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> Body {
        Body::parse(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn amounts_are_exact_and_numbers_or_strings() {
        let mut b = body(json!({"a": 100.99, "b": "19.9900", "c": "0.001", "d": 0, "e": "x"}));
        assert_eq!(b.amount("a", true), Some(10099));
        assert_eq!(b.amount("b", true), Some(1999));
        assert_eq!(b.amount("c", true), None);
        assert_eq!(b.amount("d", true), None);
        assert_eq!(b.amount("e", true), None);
        assert_eq!(b.amount("missing", false), None);
        let refused = b.finish().unwrap_err();
        let text = String::from_utf8(refused.body).unwrap();
        for field in ["\"c\"", "\"d\"", "\"e\""] {
            assert!(text.contains(field), "{text}");
        }
        assert!(!text.contains("missing"), "{text}");
    }

    #[test]
    fn card_numbers_are_checked_masked_and_tokenised_the_same_way_twice() {
        let input = json!({"cardData": {"cardNumber": "4124939999999990", "cardExpiry": "0199", "cardCVV": "100"}});
        let mut b = body(input.clone());
        let Some(CardInput::Number { card, cvv }) = b.card("acct", 1) else {
            panic!("a valid test card")
        };
        assert_eq!(
            (card.card_type, card.masked.as_str(), cvv.as_str()),
            ("VI", "4124939990", "100")
        );
        let Some(CardInput::Number { card: again, .. }) = body(input).card("acct", 1) else {
            panic!()
        };
        assert_eq!(card.token, again.token);
        assert!(!card.token.contains("9999"));
        let shown = format!("{b:?} {:?}", CardInput::Number { card, cvv });
        assert!(
            !shown.contains("4124939999999990") && !shown.contains("100"),
            "{shown}"
        );

        let mut bad = body(
            json!({"cardData": {"cardNumber": "4124939999999991", "cardExpiry": "1399", "cardCVV": "1"}}),
        );
        assert!(bad.card("acct", 1).is_none());
        let text = String::from_utf8(bad.finish().unwrap_err().body).unwrap();
        assert!(
            text.contains("cardData.cardNumber")
                && text.contains("cardData.cardExpiry")
                && text.contains("cardData.cardCVV"),
            "{text}"
        );
    }

    #[test]
    fn the_decline_rules_are_cvv_200_and_up_and_amounts_ending_in_05() {
        assert_eq!(
            decline_for_amount(1005),
            Some("Transaction Declined: DECLINE - Do not honour")
        );
        assert_eq!(decline_for_amount(1015), None);
        assert_eq!(decline_for_amount(105), decline_for_amount(5));
        assert!(decline_for_cvv("100").is_none());
        assert!(decline_for_cvv("200").unwrap().contains("CVV2"));
        assert!(decline_for_cvv("201").unwrap().contains("PICK UP"));
    }
}
