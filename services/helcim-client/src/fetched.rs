//! What one call brought back, and when: the time the request that got the answer was
//! sent, so a store can tell an older answer from a newer one; and, for an answer that
//! could not be read, the body exactly as received so it can be kept.

use std::fmt;

use chrono::{DateTime, Utc};

/// A value read from Helcim's answer, with the moment the request that got it was sent.
///
/// The send time (of the attempt that succeeded, after any wait for the rate limit and
/// any retries) is used rather than the receive time: Helcim's answer includes every
/// change it made before that moment, so of two answers the one sent later never knows
/// less. Waits spent before the request left are excluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched<T> {
    pub value: T,
    pub sent_at: DateTime<Utc>,
}

impl<T> Fetched<T> {
    pub fn into_inner(self) -> T {
        self.value
    }
}

/// An answer Helcim sent with a success status that could not be read: its body exactly
/// as received (it may not even be JSON) and when its request was sent.
///
/// `Debug` shows only its size: a body can be large, and it belongs in storage, not in a
/// log line. It never holds the API token (that travels in a request header).
#[derive(Clone, PartialEq, Eq)]
pub struct RawAnswer {
    pub body: Vec<u8>,
    pub sent_at: DateTime<Utc>,
}

impl RawAnswer {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl fmt::Debug for RawAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAnswer")
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_answer_shows_its_size_not_its_body_in_debug_output() {
        let answer = RawAnswer {
            body: br#"{"cardNumber":"4111111111111111","amount":"#.to_vec(),
            sent_at: DateTime::UNIX_EPOCH,
        };
        let debug = format!("{answer:?}");
        assert!(debug.contains("<42 bytes>"), "{debug}");
        assert!(!debug.contains("4111"), "{debug}");
        assert_eq!(answer.json(), None);
    }
}
