//! Settings of the payment-making side of the simulator: which partner tokens are
//! valid, what to answer when none is sent, how long idempotency keys live, and how
//! long a Smart Terminal customer takes.

use std::fmt;
use std::time::Duration;

/// Helcim's published test partner token.
pub const HELCIM_TEST_PARTNER_TOKEN: &str = "f29104118c0d65";

/// What `is-valid-partner-token` says when the request carried no `partner-token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WhenAbsent {
    /// No `is-valid-partner-token` header at all.
    #[default]
    Omit,
    /// `is-valid-partner-token: 0`.
    Zero,
}

/// Partner tokens Helcim accepts. Debug shows how many, never which: partner tokens
/// are secrets even here, so they stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PartnerTokens {
    pub valid: Vec<String>,
    pub when_absent: WhenAbsent,
}

impl fmt::Debug for PartnerTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerTokens")
            .field("valid", &format_args!("[{} redacted]", self.valid.len()))
            .field("when_absent", &self.when_absent)
            .finish()
    }
}

impl Default for PartnerTokens {
    fn default() -> Self {
        PartnerTokens {
            valid: vec![HELCIM_TEST_PARTNER_TOKEN.to_string()],
            when_absent: WhenAbsent::Omit,
        }
    }
}

/// What Helcim answered about one request's partner token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartnerAnswer {
    /// The request carried a `partner-token` header.
    pub sent: bool,
    /// The `is-valid-partner-token` value, `None` when the header is left out.
    pub header: Option<u8>,
}

impl PartnerTokens {
    /// `1` for a valid token, `0` for any other (even empty), and the configured
    /// behaviour when none was sent.
    pub fn answer(&self, token: Option<&str>) -> PartnerAnswer {
        match token {
            Some(token) => PartnerAnswer {
                sent: true,
                header: Some(u8::from(self.valid.iter().any(|v| v == token))),
            },
            None => PartnerAnswer {
                sent: false,
                header: match self.when_absent {
                    WhenAbsent::Omit => None,
                    WhenAbsent::Zero => Some(0),
                },
            },
        }
    }
}

/// The payment side's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSettings {
    pub partner_tokens: PartnerTokens,
    /// How long an idempotency key is remembered (Helcim: 5 minutes).
    pub idempotency_ttl: Duration,
    /// How long a Smart Terminal customer takes before the default outcome happens;
    /// `None` waits for `POST /sim/devices/{code}/complete`.
    pub terminal_delay: Option<Duration>,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            partner_tokens: PartnerTokens::default(),
            idempotency_ttl: Duration::from_secs(300),
            terminal_delay: Some(Duration::from_secs(2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_token_is_1_another_is_0_and_none_follows_the_setting() {
        let tokens = PartnerTokens::default();
        assert_eq!(
            tokens.answer(Some(HELCIM_TEST_PARTNER_TOKEN)).header,
            Some(1)
        );
        assert_eq!(tokens.answer(Some("f29104118c0d66")).header, Some(0));
        assert_eq!(tokens.answer(Some("")).header, Some(0));
        assert_eq!(
            tokens.answer(None),
            PartnerAnswer {
                sent: false,
                header: None
            }
        );
        let zero = PartnerTokens {
            when_absent: WhenAbsent::Zero,
            ..PartnerTokens::default()
        };
        assert_eq!(zero.answer(None).header, Some(0));
    }

    #[test]
    fn debug_output_never_shows_a_partner_token() {
        let shown = format!("{:?}", PartnerTokens::default());
        assert!(!shown.contains(HELCIM_TEST_PARTNER_TOKEN), "{shown}");
        assert!(shown.contains("1 redacted"), "{shown}");
    }
}
