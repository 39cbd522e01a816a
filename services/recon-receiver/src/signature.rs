//! Standard Webhooks v1 verification, as Helcim signs:
//! `base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{raw body}"))`, keyed with
//! the base64-decoded verifier token (an optional `whsec_` prefix is dropped). The
//! `webhook-signature` header lists `v1,<signature>` entries separated by spaces; any
//! one matching any active key verifies, which is how secrets rotate.
//!
//! The cost is bounded whatever the sender puts in the header: at most
//! [`MAX_SIGNATURES`] entries are accepted, the body is hashed once per active key (never
//! once per entry), and each entry is compared in constant time with those MACs.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a `webhook-timestamp` may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Most entries a `webhook-signature` header may list. Helcim sends one (two while a
/// secret rotates); more is refused rather than compared.
pub const MAX_SIGNATURES: usize = 10;

/// An HMAC-SHA256 output, the only signature length that can match.
const MAC_LEN: usize = 32;

/// One account's verifier token, decoded and ready to key HMACs. Never printed.
#[derive(Clone)]
pub struct VerifierKey {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifierKey(<redacted>)")
    }
}

/// A verifier token that cannot be used. Says why without repeating it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the verifier token is empty")]
    Empty,
    #[error("the verifier token is not base64; copy it again from Helcim's webhook settings")]
    NotBase64,
}

impl VerifierKey {
    pub fn parse(token: &str) -> Result<Self, KeyError> {
        let token = token.trim();
        let encoded = token.strip_prefix("whsec_").unwrap_or(token);
        if encoded.is_empty() {
            return Err(KeyError::Empty);
        }
        let key = STANDARD.decode(encoded).map_err(|_| KeyError::NotBase64)?;
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
        Ok(VerifierKey { keyed })
    }

    /// The MAC of the signed content under this key: the one hash of the body this key
    /// costs, whatever the number of signatures listed.
    fn mac(&self, webhook_id: &str, timestamp: &str, body: &[u8]) -> [u8; MAC_LEN] {
        #[cfg(test)]
        tests::MACS_COMPUTED.with(|count| count.set(count.get() + 1));
        let mut mac = self.keyed.clone();
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// Why a delivery did not verify: short, and free of any secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("webhook-timestamp is {0} s old; more than 300 s is refused")]
    TooOld(i64),
    #[error("webhook-timestamp is {0} s in the future; more than 300 s is refused")]
    TooNew(i64),
    #[error("webhook-signature has no v1 signature")]
    NoV1Signature,
    #[error(
        "webhook-signature lists {0} entries; at most 10 are accepted (send only the current signatures)"
    )]
    TooManySignatures(usize),
    #[error("no signature matches the account's verifier tokens")]
    Mismatch,
}

/// Checks the timestamp window, then every `v1` signature against every key.
/// `timestamp_text` is the header exactly as sent: it is part of the signed content.
pub fn verify(
    keys: &[VerifierKey],
    webhook_id: &str,
    timestamp_text: &str,
    timestamp: i64,
    signature_header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), Unverified> {
    let age = now.saturating_sub(timestamp);
    if age > TOLERANCE_SECS {
        return Err(Unverified::TooOld(age));
    }
    if -age > TOLERANCE_SECS {
        return Err(Unverified::TooNew(-age));
    }
    let entries = signature_header.split_whitespace().count();
    if entries > MAX_SIGNATURES {
        return Err(Unverified::TooManySignatures(entries));
    }
    // Only entries that can match are kept: base64 of exactly 32 bytes.
    let signatures: Vec<[u8; MAC_LEN]> = signature_header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .filter_map(|decoded| <[u8; MAC_LEN]>::try_from(decoded).ok())
        .collect();
    if signatures.is_empty() {
        return Err(Unverified::NoV1Signature);
    }
    // Every comparison runs (no early exit), so timing says nothing about which key or
    // entry matched.
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        let expected = key.mac(webhook_id, timestamp_text, body);
        for signature in &signatures {
            matched |= expected.ct_eq(signature);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(Unverified::Mismatch)
    }
}

/// Signs like Helcim (tests, benchmarks and tools).
pub fn sign(
    token: &str,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, KeyError> {
    let key = VerifierKey::parse(token)?;
    let mut mac = key.keyed;
    mac.update(format!("{webhook_id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// How many times this thread hashed a body (see [`VerifierKey::mac`]).
        pub(super) static MACS_COMPUTED: Cell<usize> = const { Cell::new(0) };
    }

    // The example from the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check(keys: &[VerifierKey], header: &str, now: i64) -> Result<(), Unverified> {
        verify(keys, ID, &TS.to_string(), TS, header, BODY, now)
    }

    #[test]
    fn the_specification_example_verifies() {
        let key = VerifierKey::parse(SECRET).unwrap();
        assert_eq!(check(&[key], SIGNATURE, TS), Ok(()));
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), SIGNATURE);
    }

    #[test]
    fn the_whsec_prefix_is_optional() {
        let key = VerifierKey::parse(SECRET.trim_start_matches("whsec_")).unwrap();
        assert_eq!(check(&[key], SIGNATURE, TS), Ok(()));
    }

    #[test]
    fn any_listed_signature_with_any_key_verifies() {
        let other = VerifierKey::parse("c2Vjb25kLWtleQ==").unwrap();
        let key = VerifierKey::parse(SECRET).unwrap();
        let header = format!("v1,AAAA v1a,ignored {SIGNATURE}");
        assert_eq!(check(&[other.clone(), key], &header, TS), Ok(()));
        assert_eq!(check(&[other], &header, TS), Err(Unverified::Mismatch));
    }

    #[test]
    fn the_window_is_300_seconds_either_way() {
        let key = [VerifierKey::parse(SECRET).unwrap()];
        assert_eq!(check(&key, SIGNATURE, TS + 300), Ok(()));
        assert_eq!(check(&key, SIGNATURE, TS - 300), Ok(()));
        assert_eq!(
            check(&key, SIGNATURE, TS + 301),
            Err(Unverified::TooOld(301))
        );
        assert_eq!(
            check(&key, SIGNATURE, TS - 301),
            Err(Unverified::TooNew(301))
        );
    }

    #[test]
    fn a_changed_body_id_or_timestamp_fails() {
        let key = [VerifierKey::parse(SECRET).unwrap()];
        assert!(verify(&key, ID, &TS.to_string(), TS, SIGNATURE, b"{}", TS).is_err());
        assert!(verify(&key, "msg_other", &TS.to_string(), TS, SIGNATURE, BODY, TS).is_err());
        let later = (TS + 1).to_string();
        assert!(verify(&key, ID, &later, TS + 1, SIGNATURE, BODY, TS).is_err());
    }

    #[test]
    fn headers_without_v1_entries_say_so() {
        let key = [VerifierKey::parse(SECRET).unwrap()];
        assert_eq!(
            check(&key, "v2,abc v1a,def", TS),
            Err(Unverified::NoV1Signature)
        );
        assert_eq!(
            check(&key, "v1,%%%notbase64", TS),
            Err(Unverified::NoV1Signature)
        );
    }

    #[test]
    fn bad_tokens_are_refused_and_keys_never_print() {
        assert_eq!(VerifierKey::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(VerifierKey::parse("whsec_").unwrap_err(), KeyError::Empty);
        assert_eq!(
            VerifierKey::parse("not base64!").unwrap_err(),
            KeyError::NotBase64
        );
        let key = VerifierKey::parse(SECRET).unwrap();
        assert_eq!(format!("{key:?}"), "VerifierKey(<redacted>)");
    }

    #[test]
    fn more_than_ten_signature_entries_are_refused_with_the_reason() {
        let key = [VerifierKey::parse(SECRET).unwrap()];
        let filler = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(10);
        assert_eq!(
            check(&key, &format!("{filler}{SIGNATURE}"), TS),
            Err(Unverified::TooManySignatures(11))
        );
        assert!(
            Unverified::TooManySignatures(11)
                .to_string()
                .contains("at most 10")
        );
        let nine = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(9);
        assert_eq!(check(&key, &format!("{nine}{SIGNATURE}"), TS), Ok(()));
    }

    #[test]
    fn the_body_is_hashed_once_per_key_whatever_the_number_of_signatures() {
        let other = VerifierKey::parse("c2Vjb25kLWtleQ==").unwrap();
        let keys = [other, VerifierKey::parse(SECRET).unwrap()];
        for entries in [1, 5, 10] {
            let header = vec!["v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; entries].join(" ");
            MACS_COMPUTED.with(|count| count.set(0));
            assert_eq!(check(&keys, &header, TS), Err(Unverified::Mismatch));
            assert_eq!(
                MACS_COMPUTED.with(Cell::get),
                keys.len(),
                "{entries} entries"
            );
        }
    }

    #[test]
    fn entries_that_are_not_32_bytes_are_never_compared() {
        let key = [VerifierKey::parse(SECRET).unwrap()];
        // Base64 of 31 and 33 bytes: well-formed, but no HMAC-SHA256 is that long.
        let header = format!(
            "v1,{} v1,{}",
            STANDARD.encode([0; 31]),
            STANDARD.encode([0; 33])
        );
        assert_eq!(check(&key, &header, TS), Err(Unverified::NoV1Signature));
    }
}
