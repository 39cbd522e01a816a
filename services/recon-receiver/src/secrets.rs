//! Secrets Helcim puts in webhook bodies (a `connectedAccount` event's `apiToken`, the
//! referred merchant's Helcim API token) never reach the queue in clear: each is taken
//! out of the body, replaced by [`SEALED_MARKER`], and the values are sealed to the
//! worker's intake public key. Pure: no I/O, no key material beyond the public key.

use recon_store::intake::IntakePublicKey;
use serde_json::Value;

/// What replaces a secret's value in the queued (and stored) body.
pub const SEALED_MARKER: &str = "[sealed]";

/// A body with its secrets taken out. Its `Debug` shows sizes only: the secrets are
/// the plaintext tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The body with every secret replaced by the marker.
    pub body: Vec<u8>,
    /// The JSON array of the secrets' values, in document order: the plaintext to seal.
    secrets: Vec<u8>,
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redacted")
            .field("body_bytes", &self.body.len())
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Redacted {
    /// Seals the secrets to the worker's intake key.
    pub fn seal(self, key: &IntakePublicKey) -> (Vec<u8>, Vec<u8>) {
        let sealed = key.seal(&self.secrets);
        (self.body, sealed)
    }
}

/// Whether `key` names an API token, however spelled (`apiToken`, `api_token`,
/// `API-Token`): a misspelling must not let a token through in clear.
fn is_secret_key(key: &str) -> bool {
    let normalized: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect();
    normalized == "apitoken"
}

/// A body that might hold a secret but does not parse as JSON, so its secrets cannot be
/// found: it must be refused, never queued as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signed body is not JSON")]
pub struct NotJson;

/// The body without its secrets, or `None` when it carries none (the common case:
/// the body is queued byte for byte). Fails closed: a body that may hold a secret but
/// cannot be parsed is an error, not "no secrets" (the caller has checked that it is
/// JSON, but a token must not reach the queue if that ever stops being true).
pub fn redact(body: &[u8]) -> Result<Option<Redacted>, NotJson> {
    // Cheap pre-check: a secret key contains "token" (or hides it in a \u escape).
    let lower = body.to_ascii_lowercase();
    if !lower.windows(5).any(|w| w == b"token") && !lower.windows(2).any(|w| w == b"\\u") {
        return Ok(None);
    }
    let mut json: Value = serde_json::from_slice(body).map_err(|_| NotJson)?;
    let mut secrets = Vec::new();
    take(&mut json, &mut secrets);
    if secrets.is_empty() {
        return Ok(None);
    }
    Ok(Some(Redacted {
        body: serde_json::to_vec(&json).expect("a JSON value serializes"),
        secrets: serde_json::to_vec(&Value::Array(secrets)).expect("a JSON value serializes"),
    }))
}

fn take(value: &mut Value, secrets: &mut Vec<Value>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if is_secret_key(key) {
                    secrets.push(std::mem::replace(
                        field,
                        Value::String(SEALED_MARKER.into()),
                    ));
                } else {
                    take(field, secrets);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| take(item, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_connected_account_token_is_taken_out_wherever_it_sits() {
        let body = br#"{"type":"connectedAccount","data":{"connectedAccountId":981,"apiToken":"tok-SECRET","riskReview":"approved"}}"#;
        let redacted = redact(body).unwrap().unwrap();
        assert_eq!(
            text(&redacted.body),
            r#"{"type":"connectedAccount","data":{"connectedAccountId":981,"apiToken":"[sealed]","riskReview":"approved"}}"#
        );
        assert_eq!(text(&redacted.secrets), r#"["tok-SECRET"]"#);
        let top = redact(br#"{"type":"connectedAccount","apiToken":"t1"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(text(&top.secrets), r#"["t1"]"#);
    }

    #[test]
    fn spellings_and_escapes_do_not_let_a_token_through() {
        for body in [
            r#"{"api_token":"t"}"#,
            r#"{"API-Token":"t"}"#,
            r#"{"api\u0054oken":"t"}"#,
            r#"{"list":[{"apitoken":"t"}]}"#,
        ] {
            let redacted = redact(body.as_bytes())
                .unwrap()
                .unwrap_or_else(|| panic!("{body}"));
            assert_eq!(text(&redacted.secrets), r#"["t"]"#, "{body}");
            assert!(!text(&redacted.body).contains("\"t\""), "{body}");
        }
    }

    #[test]
    fn a_body_without_secrets_is_left_alone_byte_for_byte() {
        assert_eq!(redact(br#"{"id":"1","type":"cardTransaction"}"#), Ok(None));
        assert_eq!(
            redact(br#"{"type":"connectedAccount","cardToken":"x"}"#),
            Ok(None)
        );
    }

    #[test]
    fn a_body_that_may_hold_a_token_but_does_not_parse_is_refused_not_passed_through() {
        for body in [
            &br#"{"apiToken":"tok-SECRET""#[..],
            br#"{"apiToken":"tok-SECRET"} trailing"#,
            br#"apiToken=tok-SECRET"#,
        ] {
            assert_eq!(redact(body), Err(NotJson), "{}", text(body));
        }
    }

    #[test]
    fn duplicated_keys_and_nested_arrays_leave_no_token_in_the_body() {
        let body = br#"{"apiToken":"first-SECRET","data":[[{"apiToken":"deep-SECRET"}],{"x":[{"api_token":"third-SECRET"}]}],"apiToken":"last-SECRET"}"#;
        let redacted = redact(body).unwrap().unwrap();
        assert!(
            !text(&redacted.body).contains("SECRET"),
            "{}",
            text(&redacted.body)
        );
    }

    #[test]
    fn a_redacted_body_never_prints_its_secrets_in_debug_output() {
        let redacted = redact(br#"{"apiToken":"tok-SECRET"}"#).unwrap().unwrap();
        let shown = format!("{redacted:?}");
        let as_bytes = format!("{:?}", redacted.secrets);
        let inner = as_bytes.trim_start_matches('[').trim_end_matches(']');
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains(inner), "the token's bytes are in {shown}");
    }

    #[test]
    fn sealed_secrets_open_only_with_the_intake_private_key() {
        use recon_store::MasterKey;
        use recon_store::intake::{IntakeSecretKey, IntakeSecretKeys};
        let master = MasterKey::from_base64(&MasterKey::generate(), "TEST").unwrap();
        let private = IntakeSecretKey::derive(&master);
        let redacted = redact(br#"{"apiToken":"tok"}"#).unwrap().unwrap();
        let (_, sealed) = redacted.seal(&private.public());
        let opened = IntakeSecretKeys::new(private, vec![])
            .open(&sealed)
            .unwrap();
        assert_eq!(text(&opened), r#"["tok"]"#);
    }
}
