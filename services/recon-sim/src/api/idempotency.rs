//! Helcim's idempotency rules for payment requests: an `idempotency-key` of 25 to 36
//! letters, digits, `-` or `_`; a key is remembered per account for five minutes
//! (configurable); the same key with the same request gets the first answer again,
//! byte for byte, and makes nothing new; the same key with a different request
//! (another endpoint, or another body) gets 409.
//!
//! Bodies compare as JSON values when both are JSON (so key order does not matter),
//! byte for byte otherwise. Only a digest is kept, never the body: payment bodies hold
//! card data.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::gate::Answer;

/// Why an `idempotency-key` header was refused.
pub fn check_key(key: Option<&str>) -> Result<&str, String> {
    let Some(key) = key else {
        return Err(
            "the idempotency-key header is required on Payment API requests (25 to 36 letters, digits, '-' or '_'; a UUID works)"
                .into(),
        );
    };
    if !(25..=36).contains(&key.len()) {
        return Err(format!(
            "the idempotency-key must be 25 to 36 characters long; this one has {}",
            key.len()
        ));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "the idempotency-key may hold only letters, digits, '-' and '_'; it has {bad:?}"
        ));
    }
    Ok(key)
}

/// What a request looked like, to tell a retry from a different request: the
/// endpoint and a digest of the body (of its canonical JSON when it is JSON).
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    endpoint: &'static str,
    digest: [u8; 32],
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprint")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Fingerprint {
    pub fn of(endpoint: &'static str, body: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(json) => {
                hasher.update(b"json:");
                canonical(&json, &mut hasher);
            }
            Err(_) => {
                hasher.update(b"raw:");
                hasher.update(body);
            }
        }
        Fingerprint {
            endpoint,
            digest: hasher.finalize().into(),
        }
    }

    fn same_request(&self, other: &Fingerprint) -> bool {
        self == other
    }
}

/// Feeds `value` to the hasher with object keys sorted, so key order does not count.
fn canonical(value: &serde_json::Value, hasher: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for key in keys {
                hasher.update(
                    serde_json::to_string(key)
                        .expect("a string serialises")
                        .as_bytes(),
                );
                hasher.update(b":");
                canonical(&fields[key], hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

/// What to do with a request that carries a valid key.
#[derive(Debug)]
pub enum Seen {
    /// Never seen (or forgotten): handle it, then [`IdempotencyStore::remember`].
    New,
    /// The same request again: answer this.
    Replay(Answer),
    /// The key was used for a different request.
    Conflict,
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    fingerprint: Fingerprint,
    answer: Answer,
}

/// Remembered keys, per account.
#[derive(Debug)]
pub struct IdempotencyStore {
    ttl: Duration,
    entries: HashMap<(String, String), Entry>,
    last_sweep: Option<Instant>,
}

impl IdempotencyStore {
    pub fn new(ttl: Duration) -> Self {
        IdempotencyStore {
            ttl,
            entries: HashMap::new(),
            last_sweep: None,
        }
    }

    pub fn check(
        &mut self,
        account: &str,
        key: &str,
        fingerprint: &Fingerprint,
        now: Instant,
    ) -> Seen {
        self.sweep(now);
        match self.entries.get(&(account.to_string(), key.to_string())) {
            Some(entry) if now.duration_since(entry.at) < self.ttl => {
                if entry.fingerprint.same_request(fingerprint) {
                    Seen::Replay(entry.answer.clone())
                } else {
                    Seen::Conflict
                }
            }
            _ => Seen::New,
        }
    }

    pub fn remember(
        &mut self,
        account: &str,
        key: &str,
        fingerprint: Fingerprint,
        answer: Answer,
        now: Instant,
    ) {
        self.entries.insert(
            (account.to_string(), key.to_string()),
            Entry {
                at: now,
                fingerprint,
                answer,
            },
        );
    }

    /// Forgets expired keys, at most once a second.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        let ttl = self.ttl;
        self.entries.retain(|_, e| now.duration_since(e.at) < ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "idempotency20240514test01";

    fn answer(body: &str) -> Answer {
        Answer::raw(200, body.as_bytes().to_vec(), Some(1))
    }

    #[test]
    fn keys_are_25_to_36_letters_digits_dashes_or_underscores() {
        assert!(check_key(Some(KEY)).is_ok());
        assert!(check_key(Some("0f8fad5b-d9cb-469f-a165-70867728950e")).is_ok());
        assert!(check_key(Some(&"a".repeat(24))).unwrap_err().contains("24"));
        assert!(check_key(Some(&"a".repeat(37))).unwrap_err().contains("37"));
        assert!(
            check_key(Some("idempotency20240514test0!"))
                .unwrap_err()
                .contains("'!'")
        );
        assert!(check_key(None).unwrap_err().contains("required"));
    }

    #[test]
    fn the_same_request_replays_a_different_one_conflicts_and_keys_expire() {
        let mut store = IdempotencyStore::new(Duration::from_secs(300));
        let t0 = Instant::now();
        let first = Fingerprint::of("payment/purchase", br#"{"amount":1,"currency":"CAD"}"#);
        assert!(matches!(store.check("a", KEY, &first, t0), Seen::New));
        store.remember("a", KEY, first, answer("{\"transactionId\":1}"), t0);
        let reordered = Fingerprint::of("payment/purchase", br#"{"currency":"CAD","amount":1}"#);
        match store.check("a", KEY, &reordered, t0 + Duration::from_secs(299)) {
            Seen::Replay(replayed) => assert_eq!(replayed, answer("{\"transactionId\":1}")),
            other => panic!("expected a replay, got {other:?}"),
        }
        let other_body = Fingerprint::of("payment/purchase", br#"{"amount":2,"currency":"CAD"}"#);
        assert!(matches!(
            store.check("a", KEY, &other_body, t0),
            Seen::Conflict
        ));
        let other_endpoint =
            Fingerprint::of("payment/preauth", br#"{"amount":1,"currency":"CAD"}"#);
        assert!(matches!(
            store.check("a", KEY, &other_endpoint, t0),
            Seen::Conflict
        ));
        // Keys are per account.
        assert!(matches!(store.check("b", KEY, &other_body, t0), Seen::New));
        assert!(matches!(
            store.check("a", KEY, &other_body, t0 + Duration::from_secs(300)),
            Seen::New
        ));
    }

    #[test]
    fn bodies_that_are_not_json_compare_byte_for_byte() {
        let nested = Fingerprint::of(
            "payment/purchase",
            br#"{"a":{"x":1,"y":[1,{"b":2,"c":3}]}}"#,
        );
        let reordered = Fingerprint::of(
            "payment/purchase",
            br#"{"a":{"y":[1,{"c":3,"b":2}],"x":1}}"#,
        );
        assert!(nested.same_request(&reordered));
        let swapped = Fingerprint::of(
            "payment/purchase",
            br#"{"a":{"y":[{"c":3,"b":2},1],"x":1}}"#,
        );
        assert!(!nested.same_request(&swapped), "array order counts");
        assert!(!format!("{nested:?}").contains("digest"));
        let a = Fingerprint::of("payment/purchase", b"not json");
        assert!(a.same_request(&Fingerprint::of("payment/purchase", b"not json")));
        assert!(!a.same_request(&Fingerprint::of("payment/purchase", b"not json ")));
    }
}
