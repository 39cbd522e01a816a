//! Exact money: Helcim's decimal amounts (`19.99`, `"100.9900"`) become integer minor
//! units plus a currency. Nothing here touches `f64`.
//!
//! A crate of its own so that what only formats money (the read API) does not link the
//! Helcim HTTP client; `helcim_client::money` re-exports it.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The currencies Helcim processes card payments in. Both have two minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Currency {
    #[serde(rename = "CAD")]
    Cad,
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    /// ISO 4217 code, as Helcim writes it.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Cad => "CAD",
            Currency::Usd => "USD",
        }
    }

    /// Number of digits after the decimal point in this currency's amounts.
    pub fn minor_digits(self) -> u32 {
        2
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = AmountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_uppercase().as_str() {
            "CAD" => Ok(Currency::Cad),
            "USD" => Ok(Currency::Usd),
            _ => Err(AmountError::UnsupportedCurrency(shorten(text))),
        }
    }
}

/// An amount of money: integer minor units (cents) in a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor_units: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor_units: i64, currency: Currency) -> Self {
        Money {
            minor_units,
            currency,
        }
    }

    /// Parses a Helcim decimal amount exactly: `"100.9900"` CAD is 10099 cents.
    pub fn parse(amount: &str, currency: Currency) -> Result<Self, AmountError> {
        let minor_units = parse_minor_units(amount, currency.minor_digits())?;
        Ok(Money::new(minor_units, currency))
    }

    /// The amount as an exact decimal string, e.g. `"100.99"`.
    pub fn decimal_string(&self) -> String {
        format_minor_units(self.minor_units, self.currency.minor_digits())
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decimal_string(), self.currency)
    }
}

/// Why an amount could not be read exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a decimal number")]
    NotADecimal(String),
    #[error("amount {0:?} has more precision than the currency's minor unit")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    OutOfRange(String),
    #[error("currency {0:?} is not one Helcim processes (CAD, USD)")]
    UnsupportedCurrency(String),
}

/// Parses a decimal amount (`"19.99"`, `"100.9900"`, `"-5"`, `"1.5e1"`) into integer
/// minor units with `minor_digits` digits after the point. Trailing zeros are fine;
/// a non-zero digit past the minor unit is an error, never rounded away.
pub fn parse_minor_units(text: &str, minor_digits: u32) -> Result<i64, AmountError> {
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if !looks_like_decimal(text) {
        return Err(AmountError::NotADecimal(shorten(text)));
    }
    let decimal = to_decimal(text)?;
    let scale = Decimal::from(10_i64.pow(minor_digits));
    let scaled = decimal
        .checked_mul(scale)
        .ok_or_else(|| AmountError::OutOfRange(shorten(text)))?;
    if !scaled.fract().is_zero() {
        return Err(AmountError::TooPrecise(shorten(text)));
    }
    i64::try_from(scaled).map_err(|_| AmountError::OutOfRange(shorten(text)))
}

/// Formats minor units as a plain decimal string: `10099` with 2 digits is `"100.99"`.
pub fn format_minor_units(minor_units: i64, minor_digits: u32) -> String {
    let decimal = Decimal::from_i128_with_scale(i128::from(minor_units), minor_digits);
    decimal.to_string()
}

/// JSON-number grammar plus an optional leading `+`: the only shapes Helcim sends.
/// Checked first because `rust_decimal` is more lenient (it skips `_`, for one).
fn looks_like_decimal(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int_part) || (int_part.is_empty() && frac_part.is_some_and(digits));
    let frac_ok = frac_part.is_none_or(|f| f.is_empty() && !int_part.is_empty() || digits(f));
    let exp_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    int_ok && frac_ok && exp_ok
}

fn to_decimal(text: &str) -> Result<Decimal, AmountError> {
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str_exact(&trim_fraction_zeros(text))
    };
    parsed.map_err(|_| AmountError::OutOfRange(shorten(text)))
}

/// `"100.990000"` → `"100.99"`: trailing zeros carry no value, and dropping them keeps
/// long zero tails within `Decimal`'s 28 digits.
fn trim_fraction_zeros(text: &str) -> String {
    match text.split_once('.') {
        Some((int_part, frac)) => {
            let frac = frac.trim_end_matches('0');
            let int_part = if int_part.is_empty() || int_part == "-" || int_part == "+" {
                format!("{int_part}0")
            } else {
                int_part.to_string()
            };
            if frac.is_empty() {
                int_part
            } else {
                format!("{int_part}.{frac}")
            }
        }
        None => text.to_string(),
    }
}

/// Keeps error messages short when a field holds something unexpected and long: at
/// most 40 characters, then `…`.
pub fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helcim_decimal_shapes_give_exact_minor_units() {
        assert_eq!(parse_minor_units("100.9900", 2), Ok(10099));
        assert_eq!(parse_minor_units("19.99", 2), Ok(1999));
        assert_eq!(parse_minor_units("819.0000", 2), Ok(81900));
        assert_eq!(parse_minor_units("15", 2), Ok(1500));
        assert_eq!(parse_minor_units("0", 2), Ok(0));
        assert_eq!(parse_minor_units("0.01", 2), Ok(1));
        assert_eq!(parse_minor_units(".5", 2), Ok(50));
        assert_eq!(parse_minor_units("-12.30", 2), Ok(-1230));
        assert_eq!(parse_minor_units("1.999e2", 2), Ok(19990));
        assert_eq!(parse_minor_units("12345E-2", 2), Ok(12345));
    }

    #[test]
    fn sub_cent_precision_is_refused_not_rounded() {
        assert!(matches!(
            parse_minor_units("19.999", 2),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_minor_units("0.001", 2),
            Err(AmountError::TooPrecise(_))
        ));
    }

    #[test]
    fn non_numbers_are_refused_with_the_reason() {
        for bad in [
            "", "abc", "1,000.00", "1_000", " 1", "1 ", "--1", "1.2.3", "e5", "0x10",
        ] {
            assert!(
                parse_minor_units(bad, 2).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(matches!(
            parse_minor_units("99999999999999999999.99", 2),
            Err(AmountError::OutOfRange(_))
        ));
    }

    #[test]
    fn money_prints_as_an_exact_decimal() {
        assert_eq!(Money::new(10099, Currency::Cad).decimal_string(), "100.99");
        assert_eq!(Money::new(-5, Currency::Usd).decimal_string(), "-0.05");
        assert_eq!(Money::new(1500, Currency::Usd).to_string(), "15.00 USD");
    }

    #[test]
    fn currency_codes_are_read_case_insensitively() {
        assert_eq!("cad".parse::<Currency>(), Ok(Currency::Cad));
        assert_eq!("USD".parse::<Currency>(), Ok(Currency::Usd));
        assert!("EUR".parse::<Currency>().is_err());
    }
}
