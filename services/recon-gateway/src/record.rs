//! One piece of evidence from one forwarded payment request: pure, so what is kept (and
//! what never is) is tested without a server.

use chrono::{DateTime, Utc};
use recon_store::evidence::{Evidence, Outcome, Source};
use recon_store::lookup::LookupKey;

use crate::extract::{self, Validity};

/// An idempotency key longer than this is not one Helcim accepts (25–36 characters);
/// it still counts for deduplication but is not stored.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// What Helcim did with the request.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    Answered {
        status: u16,
        validity: Validity,
        body: &'a [u8],
    },
    Unreachable,
    Timeout,
}

/// Everything known about one payment request when its answer is in.
#[derive(Debug)]
pub struct Observation<'a> {
    /// As [`crate::endpoint::classify`] names it.
    pub endpoint: &'static str,
    /// The current lookup key: keys the dedupe digest.
    pub lookup_key: &'a LookupKey,
    /// The `api-token`'s fingerprint under the current lookup key.
    pub token_fingerprint: &'a str,
    pub account_id: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    /// The request body exactly as forwarded.
    pub body: &'a [u8],
    /// The gateway's own id for this request.
    pub request_id: &'a str,
    pub partner_token_sent: bool,
    pub partner_token_added: bool,
    pub answer: Answer<'a>,
    pub observed_at: DateTime<Utc>,
}

/// The request's identity for deduplication. With an idempotency key, Helcim treats
/// the same key and body from the same merchant as one request (and replays its first
/// answer), so the evidence does too; without one, every request is its own.
pub fn dedupe_key(
    lookup_key: &LookupKey,
    token_fingerprint: &str,
    endpoint: &str,
    idempotency_key: Option<&str>,
    body: &[u8],
    request_id: &str,
) -> String {
    match idempotency_key {
        Some(key) => lookup_key.digest(
            "gateway-evidence idempotent",
            &[
                token_fingerprint.as_bytes(),
                endpoint.as_bytes(),
                key.as_bytes(),
                body,
            ],
        ),
        None => lookup_key.digest("gateway-evidence request", &[request_id.as_bytes()]),
    }
}

/// The evidence row for `observation`: named fields of the body, never the body.
pub fn evidence(observation: &Observation<'_>) -> Evidence {
    let o = observation;
    let fields = extract::request_fields(o.endpoint, o.body);
    let (outcome, status, validity, transaction_id) = match o.answer {
        Answer::Answered {
            status,
            validity,
            body,
        } => (
            Outcome::Answered,
            Some(status as i16),
            validity.column(),
            extract::transaction_id(body),
        ),
        Answer::Unreachable => (Outcome::Unreachable, None, None, None),
        Answer::Timeout => (Outcome::Timeout, None, None, None),
    };
    Evidence {
        dedupe_key: dedupe_key(
            o.lookup_key,
            o.token_fingerprint,
            o.endpoint,
            o.idempotency_key,
            o.body,
            o.request_id,
        ),
        source: Source::Gateway,
        account_id: o.account_id.map(str::to_string),
        api_token_lookup: Some(o.token_fingerprint.to_string()),
        endpoint: o.endpoint.to_string(),
        idempotency_key: o
            .idempotency_key
            .filter(|k| k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
            .map(str::to_string),
        partner_token_sent: o.partner_token_sent,
        partner_token_added: o.partner_token_added,
        is_valid_partner_token: validity,
        outcome,
        response_status: status,
        transaction_id,
        invoice_number: fields.invoice_number,
        customer_code: fields.customer_code,
        amount_minor: fields.amount_minor,
        currency: fields.currency,
        observed_at: o.observed_at,
        receipt_id: None,
        submitted_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const BODY: &[u8] = br#"{"amount":"10.00","currency":"CAD","invoiceNumber":"INV-9",
        "cardData":{"cardNumber":"4124939999999990","cardExpiry":"0128","cardCVV":"100","cardToken":"tok-secret-77"}}"#;

    fn key() -> LookupKey {
        LookupKey::from_base64(&SecretString::from(
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_string(),
        ))
        .unwrap()
    }

    fn observation<'a>(key: &'a LookupKey, answer: Answer<'a>) -> Observation<'a> {
        Observation {
            endpoint: "payment/purchase",
            lookup_key: key,
            token_fingerprint: "f".repeat(32).leak(),
            account_id: Some("m1"),
            idempotency_key: Some("idem-0123456789-0123456789"),
            body: BODY,
            request_id: "r1",
            partner_token_sent: false,
            partner_token_added: true,
            answer,
            observed_at: Utc::now(),
        }
    }

    #[test]
    fn an_answered_purchase_keeps_the_answer_and_the_named_fields_only() {
        let key = key();
        let e = evidence(&observation(
            &key,
            Answer::Answered {
                status: 200,
                validity: Validity::Valid,
                body: br#"{"transactionId":"777","cardToken":"tok-secret-77"}"#,
            },
        ));
        assert_eq!(e.outcome, Outcome::Answered);
        assert_eq!(e.response_status, Some(200));
        assert_eq!(e.is_valid_partner_token, Some(1));
        assert_eq!(e.transaction_id, Some(777));
        assert_eq!(e.invoice_number.as_deref(), Some("INV-9"));
        assert_eq!(
            (e.amount_minor, e.currency.as_deref()),
            (Some(1_000), Some("CAD"))
        );
        assert!((e.partner_token_added, e.partner_token_sent) == (true, false));
        let stored = serde_json::to_string(&e).unwrap();
        for secret in ["4124939999999990", "0128", "\"100\"", "tok-secret-77"] {
            assert!(!stored.contains(secret), "{secret} in {stored}");
        }
    }

    #[test]
    fn no_answer_is_recorded_as_unreachable_or_timeout_without_a_status() {
        let key = key();
        for (answer, outcome) in [
            (Answer::Unreachable, Outcome::Unreachable),
            (Answer::Timeout, Outcome::Timeout),
        ] {
            let e = evidence(&observation(&key, answer));
            assert_eq!(e.outcome, outcome);
            assert_eq!(
                (
                    e.response_status,
                    e.is_valid_partner_token,
                    e.transaction_id
                ),
                (None, None, None)
            );
            assert_eq!(e.amount_minor, Some(1_000));
        }
    }

    #[test]
    fn the_same_idempotency_key_and_body_is_one_request_and_anything_else_is_another() {
        let key = key();
        let fp = "a".repeat(32);
        let k = |idem: Option<&str>, body: &[u8], id: &str| {
            dedupe_key(&key, &fp, "payment/purchase", idem, body, id)
        };
        let first = k(Some("idem-1"), b"{}", "r1");
        assert_eq!(first, k(Some("idem-1"), b"{}", "r2"), "a retry");
        assert_ne!(
            first,
            k(Some("idem-1"), b"{ }", "r1"),
            "another body: a 409"
        );
        assert_ne!(first, k(Some("idem-2"), b"{}", "r1"));
        assert_ne!(
            first,
            dedupe_key(
                &key,
                &"b".repeat(32),
                "payment/purchase",
                Some("idem-1"),
                b"{}",
                "r1"
            ),
            "another merchant's key"
        );
        assert_ne!(k(None, b"{}", "r1"), k(None, b"{}", "r2"));
    }

    #[test]
    fn an_overlong_idempotency_key_is_not_stored() {
        let key = key();
        let long = "k".repeat(65);
        let mut o = observation(&key, Answer::Unreachable);
        o.idempotency_key = Some(&long);
        assert_eq!(evidence(&o).idempotency_key, None);
    }
}
