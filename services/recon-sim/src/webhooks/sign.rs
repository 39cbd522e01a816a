//! Standard Webhooks v1 signing: HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed
//! with the base64-decoded verifier token (an optional `whsec_` prefix is dropped).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One `v1,<base64>` signature.
pub fn signature(
    verifier_token: &str,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, base64::DecodeError> {
    let key = STANDARD.decode(
        verifier_token
            .strip_prefix("whsec_")
            .unwrap_or(verifier_token),
    )?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per active token, space-separated.
pub fn signature_header(
    verifier_tokens: &[String],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, base64::DecodeError> {
    let signatures: Result<Vec<String>, _> = verifier_tokens
        .iter()
        .map(|token| signature(token, webhook_id, timestamp, body))
        .collect();
    Ok(signatures?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_specification_example_exactly() {
        let signed = signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()).unwrap();
        assert_eq!(signed, SPEC_SIGNATURE);
    }

    #[test]
    fn every_active_token_signs() {
        let tokens = vec![SPEC_SECRET.to_string(), "c2Vjb25k".to_string()];
        let header =
            signature_header(&tokens, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY.as_bytes()).unwrap();
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], SPEC_SIGNATURE);
        assert!(parts[1].starts_with("v1,"));
    }

    #[test]
    fn a_token_that_is_not_base64_is_an_error() {
        assert!(signature("not base64!", SPEC_ID, 0, b"{}").is_err());
    }
}
